"""HR-only SR dataset: LR made on the fly with the project's MATLAB-exact bicubic.

Training: a random LR-aligned crop, flips and 90-degree rotations (basicsr's ``augment``). The LR patch
is computed from the HR window plus a margin of 3 LR pixels (wider than the bicubic kernel), so it equals
the same crop of the whole image's LR, with no border artefacts. Validation: whole images, HR cropped to
a multiple of the scale. Images smaller than the crop are skipped (counted in the log) or refused, and
corrupt images are skipped with a warning or stop the run, as the options say.
"""
import os
import random
from typing import List, Tuple

import numpy as np
import torch
from torch.utils import data

from basicsr.data.transforms import augment
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY

from sr_kd.data.image_source import list_hr_images
from sr_kd.image_io import image_size, read_rgb_uint8
from sr_kd.errors import SRKDError
from sr_kd.ops.matlab_resize import bicubic_lr, imresize

_MARGIN = 3  # LR pixels; the x4 antialiased bicubic reaches 2 LR pixels away


def lr_crop(hr: np.ndarray, scale: int, top: int, left: int, lq_size: int,
            margin: int = _MARGIN) -> Tuple[np.ndarray, np.ndarray]:
    """(LR patch, HR patch) at LR position (top, left), the LR equal to a crop of the whole image's LR."""
    lh, lw = hr.shape[0] // scale, hr.shape[1] // scale
    t0, l0 = max(top - margin, 0), max(left - margin, 0)
    t1, l1 = min(top + lq_size + margin, lh), min(left + lq_size + margin, lw)
    window = imresize(hr[t0 * scale:t1 * scale, l0 * scale:l1 * scale], 1.0 / scale)
    lq = window[top - t0:top - t0 + lq_size, left - l0:left - l0 + lq_size]
    gt = hr[top * scale:(top + lq_size) * scale, left * scale:(left + lq_size) * scale]
    return lq, gt


def training_paths(opt: dict) -> List[str]:
    """The images a dataset option block names: ``dataroot_gt`` (and ``images``) minus ``exclude`` (names
    held out, e.g. a validation split of the same folder). The offline teacher cache lists the same."""
    root = opt['dataroot_gt'] if 'dataroot_gt' in opt else opt['dataroot_lq']  # PlainImageDataset: the LR folder
    paths = list_hr_images(root, opt.get('images'))
    held_out = set(opt.get('exclude') or ())
    kept = [p for p in paths if os.path.splitext(os.path.basename(p))[0] not in held_out]
    if not kept:
        raise SRKDError(f'dataset {opt.get("name")}: exclude leaves no images in {root}')
    return kept


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


@DATASET_REGISTRY.register()
class HROnlyDataset(data.Dataset):
    """Options: dataroot_gt (folder or ``skimage``), images (optional name list), exclude (names left out),
    scale, phase,
    gt_size (train HR crop), use_hflip, use_rot, small_images ('skip' | 'error'),
    corrupt_images ('skip' | 'error'), cache (keep decoded images in memory, default true); as val,
    ``against: teacher`` gives no HR, so the student is measured against the teacher's output."""
    cache_tag = None  # what the offline teacher cache's key records of the input (None: bicubic LR, the first format)

    @staticmethod
    def whole_input(img: np.ndarray, scale: int) -> np.ndarray:
        """The student's input for a whole image, as the crops make it: the MATLAB bicubic LR of the HR
        (cropped to a multiple of ``scale``). The offline teacher runs on it (distill/teacher_cache.py)."""
        return bicubic_lr(img[:img.shape[0] - img.shape[0] % scale, :img.shape[1] - img.shape[1] % scale], scale)

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.train = opt.get('phase', 'train') == 'train'
        self.gt_size = int(opt.get('gt_size', 0) or 0) if self.train else 0
        self.on_corrupt = opt.get('corrupt_images', 'skip')
        on_small = opt.get('small_images', 'skip')
        for key, val in (('corrupt_images', self.on_corrupt), ('small_images', on_small)):
            if val not in ('skip', 'error'):
                raise SRKDError(f"dataset {opt.get('name')}: {key} must be 'skip' or 'error', not {val!r}")
        if self.train and (self.gt_size <= 0 or self.gt_size % self.scale):
            raise SRKDError(f'gt_size must be a positive multiple of scale {self.scale}, got {self.gt_size}')
        logger = get_root_logger()
        paths, small, corrupt = [], [], []
        for p in training_paths(opt):
            try:
                w, h = image_size(p, verify=True)
            except SRKDError as e:
                if self.on_corrupt == 'error':
                    raise SRKDError(f'{e} (set corrupt_images: skip to leave unreadable files out)') from e
                corrupt.append(p)
                logger.warning(f'skipping unreadable image: {e}')
                continue
            if min(w, h) < max(self.gt_size, self.scale):
                if on_small == 'error':
                    raise SRKDError(f'{p} is {w}x{h}, smaller than the crop gt_size={self.gt_size} '
                                    "(set small_images: skip to leave such images out)")
                small.append(p)
                continue
            paths.append(p)
        if small:
            logger.info(f'{opt.get("name")}: skipped {len(small)} images smaller than {self.gt_size}px')
        if not paths:
            raise SRKDError(f'no usable images in {opt["dataroot_gt"]} ({len(small)} smaller than '
                            f'gt_size={self.gt_size}, {len(corrupt)} unreadable)')
        self.paths = paths
        self.cache = {} if opt.get('cache', True) else None

    def __len__(self):
        return len(self.paths)

    def _load(self, index):
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        img = read_rgb_uint8(self.paths[index])
        if self.cache is not None:
            self.cache[index] = img
        return img

    def _load_or_skip(self, index):
        for _ in range(len(self.paths)):
            try:
                return index, self._load(index)
            except SRKDError as e:
                if self.on_corrupt == 'error':
                    raise SRKDError(f'{e} (set corrupt_images: skip to leave unreadable files out)') from e
                get_root_logger().warning(f'skipping unreadable image: {e}')
                index = (index + 1) % len(self.paths)
        raise SRKDError('every image of the training set is unreadable')

    def __getitem__(self, index):
        index, hr = self._load_or_skip(index)
        s = self.scale
        if self.train:
            lq_size = self.gt_size // s
            lh, lw = hr.shape[0] // s, hr.shape[1] // s
            top, left = random.randint(0, lh - lq_size), random.randint(0, lw - lq_size)
            lq, gt = lr_crop(hr, s, top, left, lq_size)
            (lq, gt), flips = augment([lq.copy(), gt.copy()], self.opt.get('use_hflip', True),
                                      self.opt.get('use_rot', True), return_status=True)
            # where the crop came from (LR top, left) and how it was turned (hflip, vflip, rot90): the
            # offline teacher reads the same window of its whole-image output (distill/teacher_cache.py)
            crop = torch.tensor([top, left, *map(int, flips)])
        else:
            gt = hr[:hr.shape[0] - hr.shape[0] % s, :hr.shape[1] - hr.shape[1] % s]
            lq = bicubic_lr(gt, s)
            crop = torch.tensor([0, 0, 0, 0, 0])
            if self.opt.get('against') == 'teacher':  # validated against the teacher's output (SRKDModel)
                return {'lq': to_tensor(lq), 'lq_path': self.paths[index]}
        path = self.paths[index]
        return {'lq': to_tensor(lq), 'gt': to_tensor(gt), 'lq_path': path, 'gt_path': path, 'crop': crop}
