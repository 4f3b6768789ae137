"""Benchmark evaluation: PSNR/SSIM on Y of a model over an HR folder (LR from files or made on the fly).

Shared by ``sr-kd eval`` and the tests; ``sr_kd/test.py`` reaches the same numbers through BasicSR's
test pipeline and metrics.
"""
import os
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import numpy as np
import torch

from sr_kd.data.image_source import IMAGE_EXTS
from sr_kd.image_io import read_rgb_uint8
from sr_kd.errors import SRKDError
from sr_kd.inference import upscale
from sr_kd.ops.matlab_resize import bicubic_lr, imresize
from sr_kd.ops.metrics import psnr_ssim_y, to_uint8

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo


def list_images(folder: str) -> list:
    if not os.path.isdir(folder):
        raise SRKDError(f'folder not found: {folder}')
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))
    if not files:
        raise SRKDError(f'no images in {folder}')
    return [os.path.join(folder, f) for f in files]


def find_lr(lr_dir: str, hr_path: str, scale: int) -> str:
    """The LR file for an HR file: EDSR names (``babyx4.png``) or the same name."""
    stem, ext = os.path.splitext(os.path.basename(hr_path))
    for name in (f'{stem}x{scale}{ext}', f'{stem}x{scale}.png', f'{stem}{ext}', f'{stem}.png'):
        if os.path.isfile(os.path.join(lr_dir, name)):
            return os.path.join(lr_dir, name)
    raise SRKDError(f'no LR image for {os.path.basename(hr_path)} in {lr_dir} (looked for {stem}x{scale}{ext})')


def load_pair(hr_path: str, scale: int, lr_dir: Optional[str] = None) -> tuple:
    """(LR, HR cropped to LR*scale) as uint8 RGB arrays; checks that their sizes agree with the scale."""
    hr = read_rgb_uint8(hr_path)
    if lr_dir is None:
        if min(hr.shape[:2]) < scale:
            raise SRKDError(f'{hr_path} is smaller than the scale {scale}')
        lr = bicubic_lr(hr, scale)
    else:
        lr_path = find_lr(lr_dir, hr_path, scale)
        lr = read_rgb_uint8(lr_path)
        (lh, lw), (hh, hw) = lr.shape[:2], hr.shape[:2]
        if not (lh * scale <= hh < (lh + 1) * scale and lw * scale <= hw < (lw + 1) * scale):
            raise SRKDError(f'{os.path.basename(lr_path)} is {lw}x{lh} but {os.path.basename(hr_path)} is {hw}x{hh}: '
                            f'not a x{scale} pair')
    return lr, hr[:lr.shape[0] * scale, :lr.shape[1] * scale]


def _info(model, info):
    """The model's ModelInfo; described from its weights when not given (or given as network options)."""
    from sr_kd.archs.description import ModelInfo
    if isinstance(info, ModelInfo):
        return info
    from sr_kd.archs.loading import describe
    return describe(model)


def sr_image(model: Callable[[torch.Tensor], torch.Tensor], info: Union['ModelInfo', dict, None], lr: np.ndarray,
             out_shape: Sequence[int], device: Union[str, torch.device] = 'cpu') -> np.ndarray:
    """Super-resolve one uint8 LR array; a model that takes a resized input (IMDN_AS) gets the LR resized
    (bicubic) to the output size first."""
    info = _info(model, info)
    if info.resizes_input:
        lr = imresize(lr, output_shape=out_shape[:2])
    x = torch.from_numpy(np.array(lr)).permute(2, 0, 1).float().div_(255.0).unsqueeze(0).to(device)
    return to_uint8(upscale(model, x, info))


def evaluate(model: Callable[[torch.Tensor], torch.Tensor], info: Union['ModelInfo', dict, None], hr_dir: str,
             scale: int, lr_dir: Optional[str] = None, device: Union[str, torch.device] = 'cpu',
             progress: bool = True) -> dict:
    """``info``: the model's ModelInfo (None: described from its weights).
    {'mean': {'psnr', 'ssim'}, 'images': [{'name', 'psnr', 'ssim'}, ...]} over every image of hr_dir."""
    from tqdm import tqdm

    info = _info(model, info)
    hr_files = list_images(hr_dir)
    if lr_dir is not None and not os.path.isdir(lr_dir):
        raise SRKDError(f'folder not found: {lr_dir}')
    rows = []
    for path in tqdm(hr_files, desc=f'eval x{scale}', unit='img', disable=not progress):
        lr, hr = load_pair(path, scale, lr_dir)
        sr = sr_image(model, info, lr, hr.shape, device)
        psnr, ssim = psnr_ssim_y(sr, hr, scale)
        rows.append({'name': os.path.splitext(os.path.basename(path))[0], 'psnr': float(psnr), 'ssim': float(ssim)})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ('psnr', 'ssim')}
    return {'mean': mean, 'images': rows}
