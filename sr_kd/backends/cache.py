"""Built artefacts (ONNX files, AOTInductor packages) kept between runs, so only the first call pays.

One entry per (model content, backend, precision, input-shape policy): a folder named by the hash of
those four, holding the artefact (its file name carries its own sha256) and ``entry.json``, written last,
that names the artefact, its hash and the versions it was built with. An entry is used only when
``entry.json`` reads, its key and versions match today's and the artefact's bytes hash to what it
says; anything else (a torn or edited file, another torch) is stale and rebuilt in place. Every file is
written through ``sr_kd.atomic``, so a killed build leaves the old entry or none, never half a file.

The cache lives in ``$SR_KD_CACHE`` (default ``~/.cache/sr_kd``), under ``backends/``.
"""
import hashlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Callable, Optional, Tuple, Union

from sr_kd.atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:
    import torch

ENTRY = 'entry.json'


def cache_root() -> str:
    """The folder of all entries (``$SR_KD_CACHE/backends``)."""
    from sr_kd.run_paths import cache_home
    return os.path.join(cache_home(), 'backends')


def model_digest(model: 'torch.nn.Module') -> str:
    """sha256 of a model's weights (names, dtypes, shapes, bytes) and class: the checkpoint's content,
    whatever file or key it came from, so a renamed copy hits the same entry and a retrained one does not."""
    import torch

    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().clone(memory_format=torch.contiguous_format).reshape(-1)  # any layout, same bytes
        h.update(f'{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


class Entry:
    """One cache entry: ``key`` (what was built) and ``versions`` (what it was built with) decide whether
    the entry on disk may be used."""

    def __init__(self, key: dict, versions: dict, suffix: str, root: Optional[str] = None):
        self.key = dict(key)
        self.versions = dict(versions)
        self.suffix = suffix
        name = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:24]
        self.folder = os.path.join(root or cache_root(), name)

    def read(self) -> Tuple[Optional[str], Union[dict, str]]:
        """(artefact path, recorded entry) when the entry is valid, else (None, reason it is not)."""
        meta_path = os.path.join(self.folder, ENTRY)
        if not os.path.isfile(meta_path):
            return None, 'not built yet'
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            path = os.path.join(self.folder, meta['artefact'])
        except (OSError, ValueError, KeyError, TypeError):
            return None, 'unreadable entry.json'
        if meta.get('key') != self.key or meta.get('versions') != self.versions:
            return None, f'stale (built with {meta.get("versions")})'
        if not os.path.isfile(path) or file_sha256(path) != meta.get('sha256'):
            return None, 'artefact missing or corrupt'
        return path, meta

    def build(self, make: Callable[[str], Optional[dict]], what: str) -> Tuple[str, dict]:
        """Run ``make(tmp_path)`` to write the artefact (it may return a dict of facts to record, e.g. a
        measured quality cost), then record it; says on stderr what it builds and how long it took.
        Returns (artefact path, recorded entry)."""
        t0 = time.perf_counter()
        _say(f'building {what} (once per model, precision and shape policy; cached in {self.folder}) ...')
        os.makedirs(self.folder, exist_ok=True)
        staging = os.path.join(self.folder, 'artefact' + self.suffix)
        with atomic_path(staging) as tmp:
            extra = make(tmp)
        digest = file_sha256(staging)
        name = f'{digest[:16]}{self.suffix}'
        os.replace(staging, os.path.join(self.folder, name))
        seconds = time.perf_counter() - t0
        meta = {'key': self.key, 'versions': self.versions, 'artefact': name, 'sha256': digest,
                'build_seconds': round(seconds, 2), 'built': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                **(extra or {})}
        atomic_write_text(os.path.join(self.folder, ENTRY), json.dumps(meta, indent=2))
        for old in os.listdir(self.folder):  # earlier artefacts of this entry (best effort)
            if old not in (name, ENTRY) and not old.startswith('.'):
                try:
                    os.remove(os.path.join(self.folder, old))
                except OSError:
                    pass
        _say(f'built {what} in {seconds:.1f} s')
        return os.path.join(self.folder, name), meta

    def get(self, make: Callable[[str], Optional[dict]], what: str) -> Tuple[str, dict, bool]:
        """The valid artefact, building it first when missing, stale or corrupt: (path, entry, built now)."""
        path, meta = self.read()
        if path is not None:
            return path, meta, False
        if meta != 'not built yet':
            _say(f'cache entry for {what} is {meta}: rebuilding')
        return (*self.build(make, what), True)
