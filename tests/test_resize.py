"""MATLAB-compatible bicubic: bit for bit against MATLAB's own LR files, and against its definition."""
import glob
import os

import numpy as np
import pytest
from PIL import Image

from sr_kd.ops.matlab_resize import bicubic_lr, imresize, modcrop, resize_matrix

from conftest import SHARED


def _pairs():
    out = []
    for hr in sorted(glob.glob(os.path.join(SHARED, 'benchmarks', '*', 'HR', '*.png'))):
        root, name = os.path.dirname(os.path.dirname(hr)), os.path.splitext(os.path.basename(hr))[0]
        for s in (2, 3, 4):
            out.append(pytest.param(hr, os.path.join(root, 'LR_bicubic', f'X{s}', f'{name}x{s}.png'), s,
                                    id=f'{os.path.basename(root)}-{name}-x{s}'))
    return out or [pytest.param(None, None, 0, marks=pytest.mark.skip(reason='needs ../shared/benchmarks'))]


@pytest.mark.parametrize('hr_path,lr_path,scale', _pairs())
def test_matches_matlab_lr_files(hr_path, lr_path, scale):
    hr, lr = np.asarray(Image.open(hr_path)), np.asarray(Image.open(lr_path))
    assert np.array_equal(bicubic_lr(hr, scale), lr)


def test_weights_follow_matlab_definition():
    """Rows sum to 1; the x1/2 antialiased kernel of an interior pixel equals cubic(x/2)/2 normalised."""
    m = resize_matrix(16, 8, 0.5)
    np.testing.assert_allclose(m.sum(1), 1, atol=1e-12)
    x = np.arange(16) + 1
    u = 5 / 0.5 + 0.5 * (1 - 2)  # output pixel 5 (1-based) maps to input coordinate 9.5
    d = np.abs(u - x) / 2

    def cubic(t):
        return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t <= 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0))
    ref = cubic(d) / 2
    np.testing.assert_allclose(m[4], ref / ref.sum(), atol=1e-12)


def test_uint8_rounds_per_pass_and_float_does_not():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    out8 = imresize(img, 1 / 3)
    outf = imresize(img.astype(np.float64), 1 / 3)
    assert out8.dtype == np.uint8 and out8.shape == (13, 10, 3)
    assert np.abs(out8.astype(float) - outf).max() <= 1.0
    # one pass along H, rounded, then along W: exactly what uint8 imresize does
    h = np.clip(np.floor(np.einsum('oi,ijc->ojc', resize_matrix(37, 13, 1 / 3), img) + 0.5), 0, 255)
    w = np.clip(np.floor(np.einsum('oj,ijc->ioc', resize_matrix(29, 10, 1 / 3), h) + 0.5), 0, 255)
    assert np.array_equal(out8, w.astype(np.uint8))


def test_modcrop_and_upscale_shape():
    img = np.zeros((11, 14, 3), np.uint8)
    assert modcrop(img, 4).shape == (8, 12, 3)
    assert imresize(img, output_shape=(33, 42)).shape == (33, 42, 3)
    assert imresize(np.full((5, 5), 7, np.uint8), 2).tolist() == np.full((10, 10), 7).tolist()
