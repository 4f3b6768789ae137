"""The eager backend's Compact with its tail fused (sr_kd.archs.compact_fused): the same output as
spandrel's module, bit for bit in fp32, on every scale and layout; gradients where asked; other models
untouched."""
import shutil

import pytest
import torch

import sr_kd  # noqa: F401
from basicsr.archs import build_network
from sr_kd.archs.compact_fused import FusedCompact, _prelu, fused, shuffle_add
from sr_kd.archs.loading import describe
from sr_kd.backends import prepare
from sr_kd.inference import upscale

pytest.importorskip('spandrel')


def compact(scale, feat=8, conv=3, in_ch=3, out_ch=3):
    torch.manual_seed(scale)
    net = build_network({'type': 'Compact', 'num_in_ch': in_ch, 'num_out_ch': out_ch, 'num_feat': feat,
                         'num_conv': conv, 'upscale': scale}).eval()
    for p in net.parameters():  # PReLU starts at 0.25 everywhere: vary it so a slope mix-up shows
        p.data.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize('scale', [1, 2, 3, 4])
@pytest.mark.parametrize('channels_last', [False, True])
def test_same_output_as_spandrel_bit_for_bit(scale, channels_last):
    net = compact(scale)
    x = torch.rand(2, 3, 13, 17)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.equal(FusedCompact(net)(x), net(x))


def test_shuffle_add_is_shuffle_plus_nearest():
    y, x = torch.rand(1, 12, 5, 7), torch.rand(1, 3, 5, 7)
    want = torch.nn.functional.pixel_shuffle(y, 2) + torch.nn.functional.interpolate(x, scale_factor=2)
    assert torch.equal(shuffle_add(y, x, 2), want)
    assert shuffle_add(y.bfloat16(), x, 2).dtype == torch.float32  # the sum is not rounded to bf16


@pytest.mark.parametrize('channels', [3, 16, 24, 32])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_prelu_gives_the_kernels_numbers(channels, dtype):
    layer = torch.nn.PReLU(channels)
    layer.weight.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, channels, 7, 9).to(dtype).contiguous(memory_format=torch.channels_last)
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, float('nan')])
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        got, want = _prelu(layer, x), layer(x)  # the kernel, as upscale's autocast runs it
    assert got.dtype == want.dtype and torch.equal(got.nan_to_num(7), want.nan_to_num(7))


def test_bf16_output_is_spandrels_within_bf16_rounding():
    net = compact(4, feat=16).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 21, 19).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        got, want = FusedCompact(net)(x), net(x)
    assert got.dtype == torch.float32 and (got - want.float()).abs().max() <= 2 ** -7 * want.abs().max()


def test_the_eager_backend_runs_the_fused_form_with_the_same_output():
    net = compact(4)
    x = torch.rand(1, 3, 11, 9)
    with torch.inference_mode():
        want = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    runner = prepare('eager', net, describe(net), 'fp32')
    assert isinstance(runner.fn, FusedCompact)
    assert runner.fn.state_dict().keys() == net.state_dict().keys()
    assert torch.equal(upscale(runner.fn, x, channels_last=True), want)


def test_gradients_flow_when_asked():
    net = compact(2).train()
    x = torch.rand(1, 3, 6, 6)
    fused(net)(x).sum().backward()
    grads = [p.grad for p in net.parameters()]
    net.zero_grad()
    net(x).sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, net.parameters()))


def test_other_models_are_left_as_they_are():
    other = build_network({'type': 'IMDN', 'num_feat': 8, 'num_modules': 1, 'upscale': 2})
    assert fused(other) is other
    gray_to_rgb = compact(2, in_ch=1, out_ch=3)
    assert fused(gray_to_rgb) is gray_to_rgb


@pytest.mark.skipif(not (shutil.which('g++') or shutil.which('c++')), reason='torch.compile on CPU needs a C++ compiler')
def test_upscale_compile_runs_the_fused_form():
    """``upscale --compile`` compiles the eager runner: inductor lays out ``out=`` its own way, so the
    compiled graph takes the plain tail (it fuses that itself)."""
    net = compact(4, feat=16)
    x = torch.rand(1, 3, 20, 24)
    with torch.inference_mode():
        torch.testing.assert_close(torch.compile(fused(net))(x), net(x), rtol=1e-4, atol=1e-4)
