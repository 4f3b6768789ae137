"""Distillation without ground truth: a folder of plain images, each one a student input; the teacher's
output is the only target (``train.pixel_opt`` absent, an ``OutputDistillLoss`` in ``distill_opts``).

For community teachers trained on degraded data (Real-ESRGAN and its kind): their users have images of
their own domain and no clean HR, and the student should learn the teacher's mapping on exactly those.
The crops and augmentations are HROnlyDataset's (a random ``gt_size / scale`` crop, flips, 90-degree
rotations, the same small/corrupt image policies); nothing is downscaled: the image is the LR. Each crop
reports where it came from, so the offline teacher reads its window of the teacher's whole-image output.
As a validation set it gives whole images without ground truth: SRKDModel validates against the teacher.
"""
import random

import numpy as np
import torch
from basicsr.data.transforms import augment
from basicsr.utils.registry import DATASET_REGISTRY

from sr_kd.data.hr_dataset import HROnlyDataset, to_tensor
from sr_kd.errors import SRKDError


@DATASET_REGISTRY.register()
class PlainImageDataset(HROnlyDataset):
    """Options: dataroot_lq (folder of the user's images), images, exclude, scale, gt_size (the student's
    output crop; the input crop is gt_size / scale), use_hflip, use_rot, small_images, corrupt_images, cache.
    As val (``phase: val``): whole images, validated against the teacher's output (SRKDModel)."""
    has_gt = False  # read by sr_kd.rules.train_has_gt: no task loss, no GT batch
    cache_tag = 'plain'  # the offline teacher ran on the image itself: another cache key than a bicubic LR

    @staticmethod
    def whole_input(img: np.ndarray, scale: int) -> np.ndarray:
        """The student's input for a whole image: the image itself."""
        return img

    def __init__(self, opt: dict):
        if not opt.get('dataroot_lq'):
            raise SRKDError(f'dataset {opt.get("name")}: PlainImageDataset needs dataroot_lq (a folder of images)')
        scale = int(opt['scale'])
        train = opt.get('phase', 'train') == 'train'
        gt_size = int(opt.get('gt_size', 0) or 0) if train else 0
        if train and (gt_size <= 0 or gt_size % scale):
            raise SRKDError(f'gt_size must be a positive multiple of scale {scale}, got {gt_size}')
        # The parent lists, probes and caches the images at scale 1 with the input crop as its size.
        super().__init__({**opt, 'dataroot_gt': opt['dataroot_lq'], 'scale': 1, 'gt_size': gt_size // scale})
        self.opt = opt
        self.scale = scale
        self.lq_size = gt_size // scale

    def __getitem__(self, index):
        index, img = self._load_or_skip(index)
        if not self.train:
            return {'lq': to_tensor(img), 'lq_path': self.paths[index]}
        s = self.lq_size
        top, left = random.randint(0, img.shape[0] - s), random.randint(0, img.shape[1] - s)
        lq, flips = augment([img[top:top + s, left:left + s].copy()], self.opt.get('use_hflip', True),
                            self.opt.get('use_rot', True), return_status=True)
        crop = torch.tensor([top, left, *map(int, flips)])
        return {'lq': to_tensor(lq[0] if isinstance(lq, list) else lq), 'lq_path': self.paths[index], 'crop': crop}
