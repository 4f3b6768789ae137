"""Offline teacher: its SR output and statistic maps, computed once per training image and read per crop.

With ``distill.teacher: offline`` the teacher runs once on every whole training image, on the input the
training dataset makes of it (``whole_input``: HROnlyDataset's MATLAB-exact bicubic LR, so a crop's LR
equals the same window of the whole LR; PlainImageDataset's image itself, for data without ground truth);
its SR output (float16, CHW) and, for terms that compare one-channel statistic maps
(``FeatureStatsLoss``), those maps at each teacher tap (float32) are stored as ``.npy`` files. A training
step then reads the windows of its crops (memory-mapped) and applies the crop's flips and transposition,
so the teacher costs nothing per step. Terms that need the full teacher features or the teacher network
keep the online teacher: ``offline_specs`` names them.

The cache lives in ``<cache root>/<key>``, the key hashing the teacher (architecture options and weights
file content), the training images (names and content), the scale, the taps, the maps and the precision:
any change makes a new key and a new build. A build writes into ``<key>.partial-<pid>`` and renames it
when complete, so a killed build is never read (it is removed by the next build).
"""
import hashlib
import json
import math
import os
import shutil
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from sr_kd.errors import SRKDError
from sr_kd.losses.feature_stats import spec_key, stat_map

if TYPE_CHECKING:
    from sr_kd.distill.taps import FeatureTaps
    from sr_kd.losses.base import DistillLoss

FORMAT = 1
MANIFEST = 'manifest.json'


def offline_specs(names: Sequence[str], terms: Sequence['DistillLoss']) -> List[str]:
    """The statistic maps (as ``spec_key`` strings) the terms read from the cache; one line naming every
    term that needs the online teacher (its full features or its network)."""
    specs, online = [], []
    for name, term in zip(names, terms):
        maps = getattr(term, 'offline_maps', None)
        if maps is None:
            online.append(f'l_{name} ({type(term).__name__})')
            continue
        specs += [spec_key(*m) for m in maps if spec_key(*m) not in specs]
    if online:
        raise SRKDError('distill.teacher: offline stores only the teacher\'s SR output and statistic maps, but '
                        f'{", ".join(online)} need the full teacher features or network; '
                        'use distill.teacher: online, or drop those terms')
    return specs


def relative_names(paths: Sequence[str]) -> List[str]:
    """Each path relative to the folder that holds them all: the cache's names for the images, which
    survive moving the data folder and keep same-named files of different subfolders apart."""
    base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    return [os.path.relpath(os.path.abspath(p), base) for p in paths]


def _file_digest(path, h):
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)


def dataset_source(train_ds: dict) -> Tuple[List[str], Callable[[np.ndarray, int], np.ndarray], Optional[str]]:
    """(image paths, whole-image input function, key tag) of a training dataset whose crops the cache can
    serve: one that says how it makes the student's input of a whole image (``whole_input``)."""
    from basicsr.utils.registry import DATASET_REGISTRY

    from sr_kd.data.hr_dataset import training_paths
    kind = train_ds.get('type')
    cls = DATASET_REGISTRY.get(kind) if kind in DATASET_REGISTRY else None
    if not hasattr(cls, 'whole_input'):
        raise SRKDError('distill.teacher: offline needs a training dataset that reports its crops '
                        f'(type: HROnlyDataset or PlainImageDataset), not {kind!r}')
    return training_paths(train_ds), cls.whole_input, cls.cache_tag


def cache_key(opt: dict, paths: Sequence[str], taps: Iterable[str], specs: Iterable[str], dtype: Optional[torch.dtype],
              tag: Optional[str] = None) -> str:
    """16 hex digits of SHA-256 over everything that changes the stored targets (``tag``: the dataset's
    kind of input, None for the bicubic LR of the first format)."""
    h = hashlib.sha256()
    desc = {'format': FORMAT, 'network_t': opt['network_t'], 'param_key_t': opt['path'].get('param_key_t', 'params'),
            'scale': int(opt['scale']), 'taps': list(taps), 'specs': list(specs), 'precision': str(dtype)}
    if tag is not None:
        desc['input'] = tag
    h.update(json.dumps(desc, sort_keys=True, default=str).encode())
    _file_digest(opt['path']['pretrain_network_t'], h)
    for p, name in zip(paths, relative_names(paths)):
        h.update(name.encode())
        _file_digest(p, h)
    return h.hexdigest()[:16]


def _read_manifest(folder):
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def resolve(root: str, key: str) -> str:
    """The folder of cache ``key`` under ``root``; ``root`` itself when it is one cache (it holds a manifest),
    which must then have this key (else one line: it was built for another teacher, data or taps)."""
    own = _read_manifest(root)
    if own is not None:
        if own.get('key') != key:
            raise SRKDError(f'distill.teacher_cache {root} holds the targets of another teacher, data or taps '
                            f'(built for {own.get("teacher", "?")}, key {own.get("key")}; this run needs key {key}); '
                            'point teacher_cache at a parent folder, or remove that cache')
        return root
    return os.path.join(root, key)


def is_complete(folder: str, key: str) -> bool:
    """The manifest is this key's and every array it names opens whole (a file cut short or missing: not)."""
    m = _read_manifest(folder)
    return bool(m) and m.get('key') == key and m.get('format') == FORMAT and all(
        _whole(os.path.join(folder, f'{stem}_{part}.npy')) for stem in m['images'].values() for part in ('sr', 'maps'))


def _whole(path):
    """True when the .npy opens and holds as many bytes as its header says (a memory map reads no data)."""
    try:
        np.load(path, mmap_mode='r')
        return True
    except (OSError, ValueError):
        return False


def _remove_stale_partials(folder):
    parent, base = os.path.split(folder)
    if not os.path.isdir(parent):
        return
    for name in os.listdir(parent):
        if not name.startswith(base + '.partial-'):
            continue
        pid = name.rsplit('-', 1)[-1]
        alive = pid.isdigit() and os.path.exists(f'/proc/{pid}') and int(pid) != os.getpid()
        if not alive:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


FLIP_WARN_DB = 40.0  # below this, flipped crops' cached targets are further from the teacher than students get


def _turn(t: torch.Tensor, hflip: bool, vflip: bool, rot90: bool, inverse: bool = False) -> torch.Tensor:
    if not inverse:
        return _augment(t, hflip, vflip, rot90)
    if rot90:
        t = t.transpose(-1, -2)
    if vflip:
        t = t.flip(-2)
    return t.flip(-1) if hflip else t


def flip_psnr(teacher: Any, x: torch.Tensor) -> float:
    """How far the teacher is from equivariant on the input ``x`` (1, 3, H, W): the lowest PSNR (dB, RGB,
    on 8-bit values) between its output on a flipped or turned input turned back and its output on ``x``,
    over the 7 flips and rotations the training crops get. The offline cache turns the teacher's output
    with the crop, so this is how far a turned crop's cached target is from what the teacher would give."""
    def to8(t):
        return t.clamp(0, 1).mul(255).round()
    ref = to8(teacher(x))
    worst = float('inf')
    for hf, vf, rot in [(h, v, r) for h in (0, 1) for v in (0, 1) for r in (0, 1)][1:]:
        out = to8(_turn(teacher(_turn(x, hf, vf, rot)), hf, vf, rot, inverse=True))
        mse = float(((out - ref) ** 2).mean())
        worst = min(worst, 10 * math.log10(255 ** 2 / mse) if mse else float('inf'))
    return worst


def build(folder: str, key: str, teacher: Any, taps: 'FeatureTaps', paths: Sequence[str], scale: int,
          specs: Sequence[str], whole_input: Callable[[np.ndarray, int], np.ndarray], teacher_name: str = '',
          progress: bool = True) -> str:
    """Run ``teacher`` (a ``sr_kd.distill.teacher.Teacher``: its network and precision) on
    ``whole_input(image, scale)`` of every image of ``paths`` and store SR + maps under ``folder``
    (atomically)."""
    from tqdm import tqdm

    from sr_kd.data.hr_dataset import to_tensor
    from sr_kd.image_io import read_rgb_uint8

    _remove_stale_partials(folder)
    tmp = f'{folder}.partial-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    device = next(teacher.net.parameters()).device
    images, levels, flip_db = {}, [], None
    names = relative_names(paths)
    for i, path in enumerate(tqdm(paths, desc='teacher cache', unit='img', disable=None if progress else True)):  # None: bar on terminals only
        try:
            hr = read_rgb_uint8(path)
        except SRKDError as e:  # the dataset skips or refuses it by its corrupt_images option
            from basicsr.utils import get_root_logger
            get_root_logger().warning(f'teacher cache: {e}; left out')
            continue
        lr = whole_input(hr, scale)
        x = to_tensor(lr)[None].to(device)
        taps.clear()
        sr = teacher(x)
        maps = []
        for spec in specs:
            stat, p = spec.rsplit('_p', 1)
            maps += [stat_map(f.float(), stat, float(p))[0] for f in taps.outputs]
        taps.clear()
        levels = [m.shape[0] // lr.shape[0] for m in maps]
        stem = f'{i:05d}'
        np.save(os.path.join(tmp, f'{stem}_sr.npy'), sr[0].cpu().numpy().astype(np.float16))
        np.save(os.path.join(tmp, f'{stem}_maps.npy'),
                torch.stack(maps).cpu().numpy() if maps else np.zeros((0, 1, 1), np.float32))
        images[names[i]] = stem
        if flip_db is None:  # a central window of the first image: a few small forwards
            h, w = x.shape[-2:]
            side = min(64, h, w)
            top, left = (h - side) // 2, (w - side) // 2
            flip_db = flip_psnr(teacher, x[..., top:top + side, left:left + side])
            taps.clear()
    manifest = {'format': FORMAT, 'key': key, 'teacher': teacher_name, 'scale': scale, 'specs': list(specs),
                'levels': len(taps.names), 'map_factors': levels, 'images': images,
                'flip_psnr': None if flip_db is None else round(flip_db, 2)}
    with open(os.path.join(tmp, MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=1)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process finished the same build first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_complete(folder, key):
            raise
    return folder


def _augment(t, hflip, vflip, rot90):
    """basicsr.data.transforms.augment on a (..., H, W) tensor: hflip, then vflip, then the H/W transpose."""
    if hflip:
        t = t.flip(-1)
    if vflip:
        t = t.flip(-2)
    if rot90:
        t = t.transpose(-1, -2)
    return t


class TeacherCache:
    """Reads the teacher's targets for a batch of crops from a complete cache folder."""

    def __init__(self, folder: str, paths: Sequence[str]):
        self.folder = folder
        m = _read_manifest(folder)
        self.scale, self.specs, self.levels = m['scale'], m['specs'], m['levels']
        self.factors = m['map_factors']
        self.flip_psnr = m.get('flip_psnr')  # None: a cache built before it was measured
        self.stems = {os.path.abspath(p): m['images'].get(n) for p, n in zip(paths, relative_names(paths))}
        self._open = {}

    def _arrays(self, path):
        path = os.path.abspath(path)
        if path not in self._open:
            stem = self.stems.get(path)
            if stem is None:
                raise SRKDError(f'the teacher cache {self.folder} has no entry for {path}')
            self._open[path] = tuple(np.load(os.path.join(self.folder, f'{stem}_{part}.npy'), mmap_mode='r')
                                     for part in ('sr', 'maps'))
        return self._open[path]

    def targets(self, paths: Sequence[str], crops: torch.Tensor, lq_size: int, device: torch.device,
                maps: bool = True) -> Tuple[torch.Tensor, Dict[str, List[torch.Tensor]]]:
        """(teacher SR (N, 3, H, W), {spec: [maps (N, h, w) per level]}) for crops (N, 5):
        LR top, LR left, hflip, vflip, rot90 of each sample of ``paths``; ``maps=False`` reads no maps
        (no active term compares them) and returns {}."""
        read_maps = maps
        s = self.scale
        srs, maps = [], []
        for path, (top, left, hf, vf, rot) in zip(paths, crops.tolist()):
            sr, mp = self._arrays(path)
            srs.append(_augment(torch.from_numpy(np.array(
                sr[:, top * s:(top + lq_size) * s, left * s:(left + lq_size) * s], dtype=np.float32)), hf, vf, rot))
            if read_maps and len(mp):
                maps.append(torch.stack([_augment(torch.from_numpy(np.array(
                    mp[i, top * f:(top + lq_size) * f, left * f:(left + lq_size) * f], dtype=np.float32)), hf, vf, rot)
                    for i, f in enumerate(self.factors)]))
        sr_t = torch.stack(srs).to(device)
        by_spec = {}
        if maps:
            stacked = torch.stack(maps).to(device)  # N, specs * levels, h, w
            for j, spec in enumerate(self.specs):
                by_spec[spec] = [stacked[:, j * self.levels + i] for i in range(self.levels)]
        return sr_t, by_spec


def needed_bytes(paths: Sequence[str], whole_input: Callable[[np.ndarray, int], np.ndarray], scale: int,
                  maps_per_pixel: int) -> int:
    """What ``build`` will write for these images: the float16 SR and the float32 maps of each, from the
    images' headers (the input's size relative to the image from one tiny ``whole_input``)."""
    from sr_kd.image_io import image_size
    side = 8 * scale
    ratio = whole_input(np.zeros((side, side, 3), np.uint8), scale).shape[0] / side
    total = 0
    for p in paths:
        try:
            w, h = image_size(p)
        except SRKDError:  # left out by the build too
            continue
        lr = int(w * ratio) * int(h * ratio)
        total += lr * scale * scale * 3 * 2 + lr * maps_per_pixel * 4
    return total


def _size(n: int) -> str:
    return f'{n / 1e9:.1f} GB' if n >= 1e9 else f'{n / 1e6:.1f} MB'


def _check_room(folder: str, needed: int) -> None:
    """Refuse a cache that cannot fit, before it is built (a full disk found half-way through the images
    ends the run with nothing to show for it)."""
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise SRKDError(f'the offline teacher cache needs about {_size(needed)} in {parent}, which has '
                        f'{_size(free)} free: free some space, put the cache on a larger disk '
                        '(distill.teacher_cache; sr-kd distill --cache-dir), or train on fewer or smaller images')


def ensure(opt: dict, teacher: Any, taps: 'FeatureTaps', specs: Sequence[str], train_ds: dict, root: str,
           progress: bool = True) -> TeacherCache:
    """The complete cache of ``teacher`` (a Teacher) on this run's training dataset (built when missing), as a
    TeacherCache."""
    from basicsr.utils import get_root_logger

    paths, whole_input, tag = dataset_source(train_ds)
    key = cache_key(opt, paths, taps.names, specs, teacher.dtype, tag)
    folder = resolve(root, key)
    if not is_complete(folder, key):
        if os.path.isdir(folder):  # damaged by hand (builds are atomic): never read it, rebuild it
            get_root_logger().warning(f'teacher cache {folder} is incomplete or damaged: rebuilding it')
            shutil.rmtree(folder)
        needed = needed_bytes(paths, whole_input, int(opt['scale']), len(specs) * len(taps.names))
        _check_room(folder, needed)
        get_root_logger().info(f'Building the offline teacher cache {folder} ({len(paths)} images, about '
                               f'{_size(needed)}) ...')
        build(folder, key, teacher, taps, paths, int(opt['scale']), specs, whole_input,
              teacher_name=os.path.basename(opt['path']['pretrain_network_t']), progress=progress)
    get_root_logger().info(f'Offline teacher: targets read from {folder}')
    cache = TeacherCache(folder, paths)
    turns = bool(train_ds.get('use_hflip', True) or train_ds.get('use_rot', True))
    if turns and cache.flip_psnr is not None and cache.flip_psnr < FLIP_WARN_DB:
        get_root_logger().warning(
            f'The teacher is not equivariant: its output on a flipped or turned crop, turned back, is '
            f'{cache.flip_psnr:.1f} dB PSNR from its output on the crop. The offline cache turns the teacher\'s '
            'output with the crop, so with use_hflip/use_rot the targets of 7 crops in 8 are not what the teacher '
            'gives there; set use_hflip: false and use_rot: false in datasets.train, or use the online teacher '
            '(docs/distill.md, "Which recipe")')
    return cache


def default_root(experiments_root: str) -> str:
    """Where caches go unless ``distill.teacher_cache`` says: beside the experiments, shared by every run."""
    return os.path.join(experiments_root, 'teacher_cache')
