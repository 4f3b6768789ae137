"""PSNR/SSIM the way SR papers compute them, through basicsr's reference implementation.

Protocol: the SR output is clamped and rounded to 8-bit RGB; Y (BT.601, MATLAB ``rgb2ycbcr``) is computed
in floating point and not rounded again; ``scale`` pixels are cropped from each border; SSIM uses the
11x11 Gaussian window (sigma 1.5). basicsr's functions expect BGR order, so RGB is flipped here.
"""
from typing import Tuple

import numpy as np
import torch

from basicsr.metrics import calculate_psnr, calculate_ssim


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """A [0, 1] float CHW/1CHW tensor -> HWC uint8 RGB array (clamped, rounded)."""
    t = t.detach().float().squeeze(0).clamp(0, 1).mul(255.0).round()
    return t.permute(1, 2, 0).to(torch.uint8).cpu().numpy()


def psnr_ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> Tuple[float, float]:
    """(PSNR, SSIM) on Y between two HWC uint8 RGB images of equal size."""
    if sr.shape != hr.shape:
        raise ValueError(f'SR {sr.shape} and HR {hr.shape} differ in size')
    sr_bgr, hr_bgr = np.ascontiguousarray(sr[..., ::-1]), np.ascontiguousarray(hr[..., ::-1])
    return (calculate_psnr(sr_bgr, hr_bgr, border, test_y_channel=True),
            calculate_ssim(sr_bgr, hr_bgr, border, test_y_channel=True))
