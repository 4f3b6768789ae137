"""Whole-image, tiled and adaptive-cropping forward passes (sr_kd.inference)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sr_kd  # noqa: F401
from sr_kd.archs import IMDN, IMDN_AS
from sr_kd.archs.loading import describe
from sr_kd.inference import adaptive_crop_forward, check_exact, upscale
from conftest import shared_path


def tiny(cls=IMDN, **kw):
    torch.manual_seed(0)
    return cls(num_feat=16, num_modules=2, **kw).eval()


def without_attention(model):
    """The same network with its channel attention (a global pooling) replaced by identity: what is left
    is purely local, so tiles covering its receptive field must reproduce the whole image."""
    for i in range(1, model.num_modules + 1):
        getattr(model, f'IMDB{i}').cca = torch.nn.Identity()
    return model


def image(h, w, seed=1):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_old_call_is_the_plain_forward():
    model, x = tiny(upscale=2), image(20, 28)
    with torch.no_grad():
        assert torch.equal(upscale(model, x), model(x))


@pytest.mark.parametrize('h,w,tile,pad', [(37, 50, 16, 5), (16, 45, 16, 0), (9, 9, 4, 3), (30, 12, 7, 30)])
def test_tiles_cover_every_output_pixel_once(h, w, tile, pad):
    """With a pointwise 'network', any misplaced or missing tile shows up as a wrong value."""
    x = image(h, w)
    out = upscale(lambda t: F.interpolate(t, scale_factor=3, mode='nearest'), x, tile=tile, tile_pad=pad)
    assert torch.equal(out, F.interpolate(x, scale_factor=3, mode='nearest'))


def test_tiles_equal_whole_image_when_pad_covers_the_receptive_field():
    model = without_attention(tiny(upscale=2))  # receptive field radius 4 * 2 + 3 = 11 LR pixels
    x = image(41, 53)
    whole = upscale(model, x)
    assert (upscale(model, x, tile=16, tile_pad=12) - whole).abs().max() < 1e-5
    # a pad of exactly the radius is enough, so a window one pixel off (less context on one side) shows
    assert (upscale(model, x, tile=16, tile_pad=11) - whole).abs().max() < 1e-5
    assert (upscale(model, x, tile=16, tile_pad=4) - whole).abs().max() > 1e-4  # the check can fail


def with_strong_attention(model):
    """Random weights barely use the channel attention; scaled up, per-tile statistics show."""
    with torch.no_grad():
        for i in range(1, model.num_modules + 1):
            for conv in getattr(model, f'IMDB{i}').cca.conv_du[::2]:
                conv.weight.mul_(20)
    return model


def test_exact_tiles_equal_whole_image_with_attention():
    model = with_strong_attention(tiny(upscale=2))
    x = image(41, 53) * torch.linspace(0, 1, 53) ** 3  # statistics that differ from tile to tile
    whole = upscale(model, x)
    info = describe(model)
    assert (upscale(model, x, info, tile=16, tile_pad=12) - whole).abs().max() > 5e-4  # plain tiles cannot
    assert (upscale(model, x, info, tile=16, tile_pad=12, exact=True) - whole).abs().max() < 1e-5
    batch = torch.cat([x, x.flip(3)])  # statistics are per image
    assert (upscale(model, batch, info, tile=16, tile_pad=12, exact=True) - upscale(model, batch)).abs().max() < 1e-5


def test_official_imdn_tiles():
    """docs/performance.md: plain tiles change the trained network's output (attention statistics);
    exact tiles reproduce it."""
    from PIL import Image

    from sr_kd.archs.loading import load_model
    model, info = load_model(shared_path('pretrained', 'IMDN_x4.pth'))
    hr = np.array(Image.open(shared_path('benchmarks', 'Set5', 'HR', 'baby.png')).convert('RGB'))
    x = torch.from_numpy(hr[200:272, 150:278]).permute(2, 0, 1)[None].float() / 255
    whole = upscale(model, x)  # two tiles side by side, pad 28 >= the receptive field (27)
    plain = (upscale(model, x, info, tile=72, tile_pad=28) - whole).abs().max()
    exact = (upscale(model, x, info, tile=72, tile_pad=28, exact=True) - whole).abs().max()
    assert exact < 1e-5 < plain / 10


def test_adaptive_is_the_whole_image_when_sides_are_multiples_of_4():
    model, x = tiny(IMDN_AS), image(48, 40)
    with torch.no_grad():
        assert torch.equal(upscale(model, x, adaptive=True), model(x))


@pytest.mark.parametrize('h,w', [(70, 83), (101, 66), (10, 13)])
def test_adaptive_crop_puts_every_quadrant_back(h, w):
    """A size-keeping identity 'network' must come back unchanged, and every patch it sees has sides that
    are multiples of 4 (the IMDN_AS constraint)."""
    seen = []

    def identity(t):
        seen.append(t.shape[2:])
        return t.clone()
    x = image(h, w)
    assert torch.equal(adaptive_crop_forward(identity, x), x)
    assert all(s % 4 == 0 for shape in seen for s in shape)


def test_adaptive_imdn_as_runs_any_size():
    model = tiny(IMDN_AS)
    for h, w in [(70, 83), (37, 45)]:
        assert upscale(model, image(h, w), adaptive=True).shape == (1, 3, h, w)


def test_adaptive_tiles_on_imdn_as():
    model, x = tiny(IMDN_AS), image(90, 75)
    assert upscale(model, x, adaptive=True, tile=32, tile_pad=8).shape == x.shape
    with pytest.raises(ValueError):
        upscale(model, x, adaptive=True, tile=30, tile_pad=8)


def test_channels_last_and_bf16():
    model, x = tiny(upscale=2), image(24, 32)
    ref = upscale(model, x)
    assert (upscale(model, x, channels_last=True) - ref).abs().max() < 1e-5
    bf16 = upscale(model, x, precision='bf16', channels_last=True)
    assert bf16.dtype == torch.float32 and (bf16 - ref).abs().max() < 0.05
    with pytest.raises(ValueError):
        upscale(model, x, precision='int8')


def test_size_multiple_pads_and_crops_back():
    """A model that accepts only multiples of 8 gets a padded input and its output is cropped back."""
    import dataclasses
    seen = []

    def net(t):
        seen.append(tuple(t.shape[2:]))
        assert t.shape[2] % 8 == 0 and t.shape[3] % 8 == 0
        return F.interpolate(t, scale_factor=2, mode='nearest')
    info = dataclasses.replace(describe(tiny(upscale=2)), size_multiple=8, global_stats=False, exact=None)
    x = image(21, 30)
    out = upscale(net, x, info)
    assert seen == [(24, 32)] and torch.equal(out, F.interpolate(x, scale_factor=2, mode='nearest'))
    tiled = upscale(net, x, info, tile=16, tile_pad=8)
    assert torch.equal(tiled, out) and all(s[0] % 8 == 0 and s[1] % 8 == 0 for s in seen)
    with pytest.raises(ValueError, match='multiples of 8'):
        upscale(net, x, info, tile=12, tile_pad=8)


def test_exact_tiles_need_an_arch_that_pools():
    info = describe(tiny(upscale=2))
    assert check_exact(info) is None
    no_pool = __import__('dataclasses').replace(info, arch='X', global_stats=False, exact=None)
    assert 'equal the whole image already' in check_exact(no_pool)
    with pytest.raises(ValueError, match='equal the whole image already'):
        upscale(tiny(upscale=2), image(20, 20), no_pool, tile=8, exact=True)
    assert 'do not support' in check_exact(describe(tiny(IMDN_AS)))
