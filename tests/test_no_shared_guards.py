"""Guards that do not need ../shared: without it (a user's clone) the paper-reproduction tests skip, so
the metric's border crop, the 8-bit rounding and IMDN's forward (LeakyReLU slope 0.05 included) are
checked here against independent computations."""
import argparse
import glob
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from conftest import ROOT

SLOPE = 0.05  # IMDN's LeakyReLU (Hui et al., official code: activation('lrelu', neg_slope=0.05))


def _ring_case(h=32, w=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize('border', [2, 3, 4])
def test_psnr_ignores_exactly_border_pixels(border):
    """A change in the last cropped row/column leaves PSNR infinite; one in the first kept one does not."""
    from sr_kd.ops.metrics import psnr_ssim_y
    hr = _ring_case()
    h, w = hr.shape[:2]
    for where in ('top', 'bottom', 'left', 'right'):
        for depth, kept in ((border - 1, False), (border, True)):
            sr = hr.copy()
            idx = {'top': (depth, slice(None)), 'bottom': (h - 1 - depth, slice(None)),
                   'left': (slice(None), depth), 'right': (slice(None), w - 1 - depth)}[where]
            sr[idx] = 255 - sr[idx]
            psnr = psnr_ssim_y(sr, hr, border)[0]
            assert np.isfinite(psnr) == kept, (where, depth, psnr)


def test_eval_crops_the_scale_from_each_border(tmp_path, monkeypatch):
    """Spy on the metric call of `sr-kd eval`: the border is the scale (the SR papers' protocol)."""
    import sr_kd.evaluate as ev
    from sr_kd.archs import IMDN
    from sr_kd.commands import eval_cmd
    seen = []
    real = ev.psnr_ssim_y

    def spy(sr, hr, border):
        seen.append(border)
        return real(sr, hr, border)
    monkeypatch.setattr(ev, 'psnr_ssim_y', spy)
    for scale in (2, 3):
        torch.manual_seed(0)
        torch.save({'params': IMDN(num_feat=8, num_modules=1, upscale=scale).state_dict()}, tmp_path / f'x{scale}.pth')
        hr = tmp_path / f'hr{scale}'
        hr.mkdir()
        Image.fromarray(_ring_case(12 * scale, 10 * scale)).save(hr / 'a.png')
        parser = argparse.ArgumentParser()
        eval_cmd.add_arguments(parser)  # the command's own options, defaults included
        eval_cmd.run(parser.parse_args(['--model', str(tmp_path / f'x{scale}.pth'), '--hr', str(hr),
                                        '--scale', str(scale)]))
    assert seen == [2, 3]


def test_option_files_crop_the_scale_in_validation():
    """Training-time validation (BasicSR's calculate_psnr) uses crop_border = scale in every shipped recipe."""
    checked = 0
    for path in glob.glob(os.path.join(ROOT, 'options', '**', '*.yml'), recursive=True):
        with open(path) as f:
            opt = yaml.safe_load(f)
        if not isinstance(opt, dict):
            continue
        for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
            if 'crop_border' in (metric or {}):
                assert metric['crop_border'] == opt['scale'], (path, name)
                checked += 1
    assert checked > 0


def _just_below_and_above(k):
    return torch.tensor([(k + 0.3) / 255, (k + 0.7) / 255])


def test_uint8_conversion_rounds_instead_of_truncating():
    from sr_kd.image_io import quantize
    from sr_kd.ops.metrics import to_uint8
    from basicsr.utils import tensor2img
    vals = torch.cat([_just_below_and_above(k) for k in (0, 17, 128, 254)])  # k+0.3 -> k, k+0.7 -> k+1
    want = np.array([0, 1, 17, 18, 128, 129, 254, 255], dtype=np.uint8)
    img = vals.view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()
    assert np.array_equal(to_uint8(img)[0, :, 0], want)
    assert np.array_equal(quantize(img.clone(), 8)[0, :, 0], want)
    assert np.array_equal(tensor2img([img], rgb2bgr=False)[0, :, 0], want)  # training-time validation
    assert np.array_equal(quantize(torch.full((1, 1, 1, 1), 1000.6 / 65535), 16)[0, 0], [1001])


# ----- IMDN written out from the paper / official code, on the official parameter names ---------------

def _conv(x, sd, name, pad=None):
    w = sd[f'{name}.weight']
    return F.conv2d(x, w, sd[f'{name}.bias'], padding=w.shape[-1] // 2 if pad is None else pad)


def _lrelu(x):
    return torch.where(x >= 0, x, SLOPE * x)


def _imdb(x, sd, p, distilled):
    def split(t):
        return t[:, :distilled], t[:, distilled:]
    d1, r1 = split(_lrelu(_conv(x, sd, f'{p}.c1')))
    d2, r2 = split(_lrelu(_conv(r1, sd, f'{p}.c2')))
    d3, r3 = split(_lrelu(_conv(r2, sd, f'{p}.c3')))
    d4 = _conv(r3, sd, f'{p}.c4')
    out = torch.cat([d1, d2, d3, d4], dim=1)
    mean = out.mean(dim=(2, 3), keepdim=True)
    contrast = ((out - mean) ** 2).mean(dim=(2, 3), keepdim=True).sqrt() + mean  # CCA: std + mean
    gate = torch.sigmoid(_conv(torch.relu(_conv(contrast, sd, f'{p}.cca.conv_du.0')), sd, f'{p}.cca.conv_du.2'))
    return _conv(out * gate, sd, f'{p}.c5') + x


def imdn_reference(x, sd, num_modules, upscale):
    fea = _conv(x, sd, 'fea_conv')
    distilled = sd['IMDB1.c4.weight'].shape[0]
    outs, out = [], fea
    for i in range(1, num_modules + 1):
        out = _imdb(out, sd, f'IMDB{i}', distilled)
        outs.append(out)
    body = _lrelu(_conv(torch.cat(outs, dim=1), sd, 'c.0'))
    return F.pixel_shuffle(_conv(_conv(body, sd, 'LR_conv') + fea, sd, 'upsampler.0'), upscale)


@pytest.mark.parametrize('num_feat,num_modules,upscale', [(16, 2, 2), (12, 3, 3)])
def test_imdn_forward_matches_an_independent_implementation(num_feat, num_modules, upscale):
    from sr_kd.archs import IMDN
    torch.manual_seed(num_feat)
    net = IMDN(num_feat=num_feat, num_modules=num_modules, upscale=upscale).eval()
    for p in net.parameters():  # large weights, so that many activations are negative (the slope matters)
        p.data.normal_(0, 0.3)
    sd = {k: v.double() for k, v in net.state_dict().items()}
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        got = net(x).double()
    want = imdn_reference(x.double(), sd, num_modules, upscale)
    assert got.shape == (2, 3, 9 * upscale, 7 * upscale)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())
