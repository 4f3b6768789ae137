"""Output distillation, plain and teacher-bounded (gate: teacher_closer), checked on hand-made values."""
import pytest
import torch

import sr_kd  # noqa: F401
from basicsr.losses import build_loss
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs


def term(**kw):
    return build_loss({'type': 'OutputDistillLoss', **kw})


def inputs(s, t, gt):
    s = torch.tensor(s, requires_grad=True)
    d = DistillInputs(feats_s=[], feats_t=[], sr_s=s.view(1, 1, 1, -1), sr_t=torch.tensor(t).view(1, 1, 1, -1),
                      lq=torch.zeros(1), gt=None if gt is None else torch.tensor(gt).view(1, 1, 1, -1))
    return s, d


def test_plain_l1_is_the_mean_distance_to_the_teacher():
    _, d = inputs([0.5, 0.2, 0.9, 0.0], [0.4, 0.4, 0.5, 0.0], None)
    assert term(loss_weight=2.0)(d).item() == pytest.approx(2.0 * (0.1 + 0.2 + 0.4 + 0.0) / 4)


def test_teacher_closer_gate_keeps_only_values_where_the_teacher_is_nearer_the_hr():
    # per value: |t - gt| vs |s - gt|: 0.1 < 0.3 kept; 0.3 > 0.1 dropped; 0.2 < 0.5 kept; equal (0 vs 0) dropped
    s, d = inputs([0.5, 0.3, 1.0, 0.6], [0.3, 0.5, 0.7, 0.6], [0.2, 0.2, 0.5, 0.6])
    loss = term(gate='teacher_closer')(d)
    assert loss.item() == pytest.approx((0.2 + 0.3) / 4)
    loss.backward()
    # L1's gradient: sign(s - t) / N where kept, nothing where dropped
    assert s.grad.tolist() == pytest.approx([0.25, 0.0, 0.25, 0.0])


def test_teacher_closer_gate_without_hr_and_unknown_gate_fail_in_one_line():
    _, d = inputs([0.5], [0.4], None)
    with pytest.raises(SRKDError, match='needs HR images'):
        term(gate='teacher_closer')(d)
    with pytest.raises(SRKDError, match='gate must be one of none, teacher_closer'):
        term(gate='closer')


def test_crop_border_leaves_the_edges_of_each_crop_out():
    s = torch.zeros(1, 1, 6, 6, requires_grad=True)
    t = torch.zeros(1, 1, 6, 6)
    t[..., 0, :] = 1.0  # a wrong target on the top row only: out of the comparison with a border of 1
    t[..., 2, 2] = 0.5
    d = DistillInputs(feats_s=[], feats_t=[], sr_s=s, sr_t=t, lq=torch.zeros(1), gt=None)
    loss = term(crop_border=1)(d)
    assert loss.item() == pytest.approx(0.5 / 16)
    loss.backward()
    assert s.grad[..., 0, :].abs().sum() == 0 and s.grad[0, 0, 2, 2] == pytest.approx(-1 / 16)
    assert term()(d).item() == pytest.approx((6 + 0.5) / 36)
    with pytest.raises(SRKDError, match='crop_border 3 leaves nothing of a 6x6 crop'):
        term(crop_border=3)(d)
    with pytest.raises(SRKDError, match='crop_border must be a whole number'):
        term(crop_border=-1)
