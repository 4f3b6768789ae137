"""IMDN/IMDN_AS: shapes, parameter counts of the paper, key compatibility with the official files, and the
descriptions (sr_kd.archs.description) that loading reads from a checkpoint."""
import pytest
import torch

from basicsr.archs import build_network
from sr_kd.archs import IMDN, IMDN_AS
from sr_kd.archs.description import ARCHS, find_arch
from sr_kd.archs.loading import load_model
from sr_kd.errors import SRKDError

from conftest import shared_path

OFFICIAL_PARAMS = {2: 694_404, 3: 703_059, 4: 715_176}


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_paper_parameter_counts(scale):
    net = IMDN(num_feat=64, num_modules=6, upscale=scale)
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_PARAMS[scale]


@pytest.mark.parametrize('feat,mods,scale', [(64, 6, 4), (32, 4, 4), (24, 3, 2), (16, 2, 3)])
def test_output_shape_and_registry(feat, mods, scale):
    net = build_network({'type': 'IMDN', 'num_feat': feat, 'num_modules': mods, 'upscale': scale})
    out = net(torch.rand(2, 3, 12, 10))
    assert out.shape == (2, 3, 12 * scale, 10 * scale)
    assert [n for n, _ in net.named_children()][:mods + 1] == ['fea_conv'] + [f'IMDB{i}' for i in range(1, mods + 1)]


def test_imdn_as_keeps_size():
    out = IMDN_AS(num_feat=16, num_modules=2)(torch.rand(1, 3, 24, 32))
    assert out.shape == (1, 3, 24, 32)


def test_bad_width_is_refused():
    with pytest.raises(ValueError):
        IMDN(num_feat=2)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_official_checkpoints_load_strict(scale):
    path = shared_path('pretrained', f'IMDN_x{scale}.pth')
    net, info = load_model(path)
    assert info.network_opt == {'type': 'IMDN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_modules': 6,
                                'upscale': scale, 'distill_rate': 0.25}
    assert (info.arch, info.scale, info.size_multiple, info.global_stats, info.label) == (
        'IMDN', scale, 1, True, f'IMDN 64x6 x{scale}')
    sd = torch.load(path, map_location='cpu', weights_only=True)
    own = net.state_dict()
    assert sorted('module.' + k for k in own) == sorted(sd)


def test_official_as_checkpoint_loads():
    net, info = load_model(shared_path('pretrained', 'IMDN_AS.pth'))
    assert info.arch == 'IMDN_AS' and sum(p.numel() for p in net.parameters()) == 752_104
    assert info.resizes_input and info.size_multiple == 4 and info.exact is None


def test_basicsr_load_network_with_param_key_none(tmp_path):
    """The official file loads through BasicSR's own path.pretrain_network_g + param_key_g: ~."""
    from basicsr.models.base_model import BaseModel
    path = shared_path('pretrained', 'IMDN_x4.pth')
    model = BaseModel.__new__(BaseModel)
    net = IMDN()
    model.load_network(net, path, strict=True, param_key=None)
    ref = torch.load(path, map_location='cpu', weights_only=True)
    assert torch.equal(net.IMDB3.c2.weight, ref['module.IMDB3.c2.weight'])


def test_detect_small_student_and_errors(tmp_path):
    sd = IMDN(num_feat=32, num_modules=4, upscale=3).state_dict()
    spec = find_arch(sd)
    assert spec is ARCHS['IMDN']
    assert spec.options(sd)['num_feat'] == 32 and spec.options(sd)['num_modules'] == 4 and spec.options(sd)['upscale'] == 3
    torch.save({'params': sd}, tmp_path / 's.pth')
    with pytest.raises(SRKDError, match=r'x3 model \(IMDN 32x4 x3\)'):
        load_model(str(tmp_path / 's.pth'), expect_scale=4)
    torch.save({'params': {'conv_first.weight': torch.zeros(1)}}, tmp_path / 'other.pth')
    with pytest.raises(SRKDError, match='unknown architecture: 1 tensors'):
        load_model(str(tmp_path / 'other.pth'))


def test_imdn_as_description_first():
    """IMDN_AS's keys are not taken for anything else (its description is tried before spandrel's)."""
    sd = IMDN_AS(num_feat=16, num_modules=2).state_dict()
    assert find_arch(sd) is ARCHS['IMDN_AS']
