"""Reading checkpoints safely (writes: ``sr_kd.atomic``).

Reads use ``weights_only=True``: a checkpoint that carries pickled code is refused. A checkpoint is a zip
archive whose records torch.save stores uncompressed; one that unpacks to far more than its size (a few
MB on disk, GBs of zeros once read) is refused from its directory before anything is read.
"""
import os
from typing import Any, Optional, Union

import torch

from sr_kd.errors import SRKDError


MAX_UNPACK_RATIO = 10  # torch.save stores records: a real checkpoint unpacks to about its own size
MIN_REFUSED_UNPACK = 32 << 20


def _check_unpacked_size(path):
    import zipfile
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load names the damage
    size = os.path.getsize(path)
    if unpacked > MIN_REFUSED_UNPACK and unpacked > MAX_UNPACK_RATIO * size:
        raise SRKDError(f'{path} unpacks to {unpacked / 2**20:,.0f} MiB from {size / 2**20:.2f} MiB on disk: a '
                        'compressed archive out of proportion (torch.save does not compress); refusing to read it')


def check_not_a_stand_in(path: str) -> None:
    """An empty file and a Git LFS pointer (what a clone without git-lfs holds instead of a community model's
    weights, .pth or .safetensors) are named as such: torch.load says only 'EOFError' or '101' of them,
    safetensors 'HeaderTooSmall'."""
    with open(path, 'rb') as f:
        head = f.read(64)
    if not head:
        raise SRKDError(f'cannot read checkpoint {path}: the file is empty (0 bytes); download it again')
    if head.startswith(b'version https://git-lfs'):
        raise SRKDError(f'cannot read checkpoint {path}: it is a Git LFS pointer (a small text file that names the '
                        'weights), not the weights: run `git lfs pull` in its repository or download the file itself')


def load_checkpoint(path: str, map_location: Union[str, torch.device] = 'cpu') -> Any:
    """torch.load with weights_only=True; user errors become one-line SRKDError."""
    import re
    import warnings
    if not os.path.isfile(path):
        raise SRKDError(f'checkpoint not found: {path}')
    check_not_a_stand_in(path)
    _check_unpacked_size(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.simplefilter('ignore', UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here is a bad file, said in one line
        text = str(e)
        code = re.search(r'GLOBAL (\S+)', text)
        if code:
            raise SRKDError(f'{path} is not a plain weights file (it carries pickled code: {code.group(1)}); '
                            'refusing to load it') from e
        if 'weights_only' in text:
            raise SRKDError(f'cannot read checkpoint {path}: not a PyTorch weights file, or a damaged one') from e
        detail = re.sub(r'\[enforce fail at [^\]]*\]\s*\.?\s*', '', text.strip().splitlines()[0] if text.strip() else '')
        raise SRKDError(f'cannot read checkpoint {path}: not a PyTorch weights file, or a damaged one '
                        f'({type(e).__name__}{": " + detail if detail else ""})') from e


def extract_state_dict(ckpt: Any, param_key: Optional[str] = None) -> dict:
    """The state_dict inside a checkpoint: BasicSR's {'params': ...}/{'params_ema': ...} or a plain one.

    The 'module.' prefix of DataParallel checkpoints (the official IMDN files) is stripped.
    """
    if not isinstance(ckpt, dict):
        raise SRKDError('checkpoint does not hold a state_dict')
    if param_key:
        if param_key not in ckpt:
            raise SRKDError(f'checkpoint has no key {param_key!r}; it has: {", ".join(map(str, ckpt))}')
        ckpt = ckpt[param_key]
    elif not any(torch.is_tensor(v) for v in ckpt.values()):
        for key in ('params_ema', 'params', 'state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    sd = {(k[7:] if k.startswith('module.') else k): v for k, v in ckpt.items()}
    if not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise SRKDError('checkpoint does not hold a state_dict of tensors')
    from sr_kd.rules import nonfinite_names
    bad = nonfinite_names(sd)
    if bad:  # such weights give black or garbage images: refuse them instead
        raise SRKDError(f'checkpoint holds NaN/inf weights ({", ".join(bad[:2])}{", ..." if len(bad) > 2 else ""}); '
                        'refusing it (it would give black images): use an earlier checkpoint of that run')
    return sd


def check_fits(net: torch.nn.Module, sd: dict, strict: bool, what: str) -> None:
    """Raise one line naming the keys or shapes that keep ``sd`` from loading into ``net``."""
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f'{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
              if k in sd and sd[k].shape != v.shape]
    if shapes or (strict and (missing or unexpected)):
        detail = '; '.join(filter(None, [
            f'shapes differ (checkpoint vs network): {", ".join(shapes[:2])}' if shapes else '',
            f'missing keys: {", ".join(missing[:3])}' if missing else '',
            f'unexpected keys: {", ".join(unexpected[:3])}' if unexpected else '']))
        raise SRKDError(f'{what}: {detail}')
