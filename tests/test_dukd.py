"""DUKD terms (sr_kd/losses/dukd.py): every part trains the student only, the paired augmentations invert
exactly, the upcycled inputs have the paper's sizes, the values equal an independent computation, and a
short SRKDModel run through BasicSR logs each part."""
import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from basicsr.losses import build_loss
from kd_util import run_cli, tiny_options, write_options
from sr_kd.archs import IMDN
from sr_kd.errors import SRKDError
from sr_kd.losses import dukd
from sr_kd.losses.base import DistillInputs
from sr_kd.ops.matlab_resize import imresize

TERMS = {
    'zi': {'type': 'DUKDZoomInLoss'},
    'zo': {'type': 'DUKDZoomOutLoss'},
    'zo_rec': {'type': 'DUKDZoomOutReconLoss'},
    'lc': {'type': 'DUKDConsistencyLoss'},
    'lc_zo': {'type': 'DUKDConsistencyLoss', 'source': 'zoom_out', 'prob': 1.0},
    'lc_lr': {'type': 'DUKDConsistencyLoss', 'source': 'lr', 'prob': 0.5},
}


def _nets(seed=0, scale=4):
    torch.manual_seed(seed)
    student = IMDN(num_feat=8, num_modules=1, upscale=scale)
    teacher = IMDN(num_feat=16, num_modules=2, upscale=scale).eval()
    return student, teacher


def _value(opt, d):
    with torch.no_grad():
        return float(build_loss(opt)(d))


def _inputs(student, teacher, batch=8, lr=24, scale=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    lq = torch.rand(batch, 3, lr, lr, generator=g)
    gt = torch.rand(batch, 3, lr * scale, lr * scale, generator=g)
    with torch.no_grad():
        sr_t = teacher(lq)
    return DistillInputs([], [], student(lq), sr_t, lq, gt, student=student, teacher=teacher)


@pytest.mark.parametrize('name', list(TERMS))
def test_each_part_sends_gradients_to_the_student_only(name):
    student, teacher = _nets()
    # the teacher's parameters left trainable (as in the reference code): the term itself must keep the
    # teacher out of the graph (no_grad), not rely on the model having frozen it
    d = _inputs(student, teacher)
    term = build_loss(dict(TERMS[name]))
    assert not term.uses_features
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss = term(d)
    assert loss.requires_grad and loss.dim() == 0 and float(loss.detach()) > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters()), name
    assert all(p.grad is None for p in teacher.parameters()), name
    assert not teacher.training
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    for key, val in d._dukd.items():  # no graph through the teacher's labels or the upcycled inputs
        if key[0] in ('teacher', 'input'):
            assert val.grad_fn is None and not val.requires_grad, (name, key)


def test_upcycled_inputs_have_the_papers_sizes():
    student, teacher = _nets()
    d = _inputs(student, teacher, batch=8, lr=24, scale=4)
    for name in ('zi', 'zo', 'zo_rec', 'lc'):
        build_loss(dict(TERMS[name]))(d)
    sizes = {k: tuple(v.shape) for k, v in d._dukd.items()}
    # zoom-in: one LR-sized (24 px) tile of each 96 px HR patch; the teacher labels it at 96 px
    assert sizes[('input', 'zoom_in', 1)] == (8, 3, 24, 24)
    assert sizes[('teacher', 'input', 'zoom_in', 1)] == (8, 3, 96, 96)
    # zoom-out: the 24 px LR patch downscaled x4 to 6 px; labels (and the student's output) at 24 px
    assert sizes[('input', 'zoom_out', None)] == (8, 3, 6, 6)
    assert sizes[('teacher', 'input', 'zoom_out', None)] == (8, 3, 24, 24)
    assert sizes['student_zoom_out'] == (8, 3, 24, 24)
    assert dukd.zoom_in_inputs(d.gt, (24, 24), n_crops=3).shape == (24, 3, 24, 24)


def test_zoom_in_tiles_are_distinct_grid_tiles_of_each_hr_patch():
    torch.manual_seed(0)
    gt = torch.rand(4, 3, 96, 96)
    seen = set()
    for _ in range(40):
        crops = dukd.zoom_in_inputs(gt, (24, 24), n_crops=2)
        for k in range(crops.shape[0]):
            b = k // 2
            where = [(i, j) for i in range(4) for j in range(4)
                     if torch.equal(crops[k], gt[b, :, 24 * i:24 * i + 24, 24 * j:24 * j + 24])]
            assert len(where) == 1
            seen.add(where[0])
        assert not torch.equal(crops[0], crops[1])  # an image's two tiles differ
    assert len(seen) == 16  # every tile of the 4x4 grid gets drawn
    with pytest.raises(SRKDError, match='n_crops'):
        dukd.zoom_in_inputs(gt, (24, 24), n_crops=17)


def test_zoom_out_is_matlab_bicubic_of_each_lr_patch():
    lq = torch.rand(3, 3, 24, 20)
    out = dukd.zoom_out_inputs(lq, 4)
    ref = np.stack([imresize(x.permute(1, 2, 0).double().numpy(), 0.25) for x in lq])
    assert out.shape == (3, 3, 6, 5)
    assert np.abs(out.permute(0, 2, 3, 1).double().numpy() - ref).max() < 1e-6


@pytest.mark.parametrize('combo', list(itertools.product([False, True], repeat=4)))
def test_augmentations_invert_exactly_on_non_square_tensors(combo):
    x = torch.rand(3, 3, 5, 7)  # torch.rand values lie on the 2^-24 grid, where 1 - (1 - x) == x exactly
    draw = torch.tensor([combo] * 3)
    y = dukd.augment(x, draw)
    assert torch.equal(dukd.invert_augment(y, draw), x)
    if combo[3]:
        assert y.shape[-2:] == (7, 5)


def test_augmentations_mixed_per_sample_invert_exactly():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 6, 6)
    draw = dukd.draw_augmentations(64, 0.5)
    assert torch.equal(dukd.invert_augment(dukd.augment(x, draw), draw), x)
    assert draw.any(0).all() and not draw.all(0).any()  # every op used, none on every sample
    only = dukd.draw_augmentations(1000, 1.0, ops=('flip_w', 'invert'))
    assert only[:, [0, 2]].all() and not only[:, [1, 3]].any()
    # re-applying the same ops in the same order (the reference code's "inverse") is not one when a flip
    # meets a transpose: it leaves the sample rotated by 180 degrees
    flip_t = torch.tensor([[False, True, False, True]])
    wrong = dukd.augment(dukd.augment(x[:1], flip_t), flip_t)
    assert not torch.equal(wrong, x[:1]) and torch.equal(wrong, x[:1].flip(-1, -2))
    with pytest.raises(SRKDError, match='square'):
        dukd.augment(torch.rand(2, 3, 4, 6), torch.tensor([[False] * 3 + [True], [False] * 4]))


class NearestUp(nn.Module):
    """An upscaler that commutes with every augmentation (flips, transpose, 1 - x)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * nn.functional.interpolate(x, scale_factor=self.scale)


@pytest.mark.parametrize('source', dukd.SOURCES)
def test_consistency_is_zero_for_an_equivariant_student_equal_to_the_teacher(source):
    torch.manual_seed(0)
    net = NearestUp(4)
    d = DistillInputs([], [], net(torch.zeros(1, 3, 8, 8)), None, torch.rand(16, 3, 8, 8), torch.rand(16, 3, 32, 32),
                      student=net, teacher=net)
    d.sr_s, d.sr_t = net(d.lq), net(d.lq).detach()
    term = build_loss({'type': 'DUKDConsistencyLoss', 'source': source, 'prob': 0.5})
    assert float(term(d).detach()) == pytest.approx(0.0, abs=1e-7)
    # against an unrelated label it is not (so the zero above is the inverse pairing, not a constant)
    d2 = DistillInputs([], [], d.sr_s, d.sr_t, d.lq, d.gt, student=net, teacher=NearestUp(4).eval())
    d2.teacher.w.data.fill_(0.5)
    if source != 'lr':
        assert float(term(d2).detach()) > 0.01


def test_values_equal_an_independent_computation():
    student, teacher = _nets()
    d = _inputs(student, teacher, batch=4)
    zo = torch.from_numpy(np.stack([imresize(x.permute(1, 2, 0).double().numpy(), 0.25) for x in d.lq]))
    zo = zo.permute(0, 3, 1, 2).float()
    with torch.no_grad():
        want_zo = (student(zo) - teacher(zo)).abs().mean()
        want_rec = (student(zo) - d.lq).abs().mean()
    assert _value({'type': 'DUKDZoomOutLoss'}, d) == pytest.approx(float(want_zo), rel=1e-5)
    assert _value({'type': 'DUKDZoomOutReconLoss', 'loss_weight': 5}, d) == pytest.approx(
        5 * float(want_rec), rel=1e-5)
    torch.manual_seed(3)
    got = _value({'type': 'DUKDZoomInLoss', 'criterion': 'mse'}, d)
    crops = d._dukd[('input', 'zoom_in', 1)]
    with torch.no_grad():
        assert got == pytest.approx(float(((student(crops) - teacher(crops)) ** 2).mean()), rel=1e-5)
    # consistency with every sample flipped left-right: flip back the student's output on flipped tiles
    d3 = _inputs(student, teacher, batch=4)
    got = _value({'type': 'DUKDConsistencyLoss', 'ops': ['flip_w'], 'prob': 1.0}, d3)
    crops = d3._dukd[('input', 'zoom_in', 1)]
    with torch.no_grad():
        want = (student(crops.flip(-1)).flip(-1) - teacher(crops)).abs().mean()
    assert got == pytest.approx(float(want), rel=1e-5)


def test_terms_of_one_step_share_inputs_and_labels():
    student, teacher = _nets()
    d = _inputs(student, teacher, batch=2)
    calls = []
    teacher.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[-1]))
    for name in ('zi', 'lc', 'zo', 'zo_rec'):
        build_loss(dict(TERMS[name]))(d)
    assert sorted(calls) == [6, 24]  # one teacher forward per upcycled set, however many terms use it


@pytest.mark.parametrize('bad, fragment', [
    ({'type': 'DUKDConsistencyLoss', 'prob': 0}, 'prob'),
    ({'type': 'DUKDConsistencyLoss', 'ops': ['rot90']}, 'ops'),
    ({'type': 'DUKDConsistencyLoss', 'source': 'hr'}, 'source'),
    ({'type': 'DUKDZoomInLoss', 'n_crops': 0}, 'n_crops'),
    ({'type': 'DUKDConsistencyLoss', 'n_crops': 'two'}, 'n_crops'),
    ({'type': 'DUKDZoomOutLoss', 'criterion': 'l3'}, 'criterion'),
])
def test_bad_options_fail_in_one_line(bad, fragment):
    with pytest.raises(SRKDError, match=fragment):
        build_loss(bad)


def test_needs_the_networks():
    student, teacher = _nets()
    d = _inputs(student, teacher, batch=2)
    d.teacher = None
    with pytest.raises(SRKDError, match='online teacher'):
        build_loss({'type': 'DUKDZoomInLoss'})(d)
    build_loss({'type': 'DUKDZoomOutReconLoss'})(d)  # needs no teacher


def test_short_training_through_basicsr_logs_each_part(tmp_path):
    opt = tiny_options(tmp_path, name='dukd_tiny', total_iter=2)
    opt['distill'] = {'pairs': []}
    opt['train']['distill_opts'] = [
        {'type': 'OutputDistillLoss', 'name': 'out', 'loss_weight': 0.2},
        {'type': 'DUKDZoomInLoss', 'name': 'zi', 'loss_weight': 0.2},
        {'type': 'DUKDZoomOutLoss', 'name': 'zo', 'loss_weight': 0.2},
        {'type': 'DUKDZoomOutReconLoss', 'name': 'zo_rec', 'loss_weight': 1.0},
        {'type': 'DUKDConsistencyLoss', 'name': 'lc', 'loss_weight': 0.2}]
    opt['val']['val_freq'] = 2
    opt['logger']['save_checkpoint_freq'] = 2
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'dukd.yml', opt)], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'dukd_tiny'
    rows = [json.loads(ln) for ln in (exp / 'losses.jsonl').read_text().splitlines()]
    assert [r['iter'] for r in rows] == [1, 2]
    for r in rows:
        for key in ('l_pix', 'l_out', 'l_zi', 'l_zo', 'l_zo_rec', 'l_lc'):
            assert key in r and np.isfinite(r[key]) and r[key] > 0, (key, r)
    log = next(exp.glob('train_*.log')).read_text()
    assert 'l_zo_rec' in log and 'l_lc' in log


def test_offline_teacher_refuses_the_terms_that_run_the_teacher():
    from sr_kd.distill.teacher_cache import offline_specs
    names = ['zi', 'zo', 'lc']
    with pytest.raises(SRKDError, match='l_zi .*l_zo .*l_lc '):
        offline_specs(names, [build_loss(dict(TERMS[n])) for n in names])
    # the reconstruction term and consistency on the batch itself read no teacher network: they run offline
    names = ['zo_rec', 'lc_lr']
    assert offline_specs(names, [build_loss(dict(TERMS[n])) for n in names]) == []


def test_upcycled_labels_follow_the_models_teacher_precision():
    from sr_kd.distill.teacher import run_teacher
    student, teacher = _nets()
    labels = {}
    for dtype in (None, torch.bfloat16):
        d = _inputs(student, teacher, batch=2)
        d.teacher_dtype = dtype
        torch.manual_seed(5)
        build_loss({'type': 'DUKDZoomInLoss'})(d)
        x = d._dukd[('input', 'zoom_in', 1)]
        labels[dtype] = d._dukd[('teacher', 'input', 'zoom_in', 1)]
        assert labels[dtype].dtype == torch.float32
        assert torch.equal(labels[dtype], run_teacher(teacher, x, dtype))
    assert not torch.equal(labels[None], labels[torch.bfloat16])  # the same tiles (same seed), another precision
