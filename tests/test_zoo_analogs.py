"""SR analogs of classification-only entries: Sobolev (input-gradient matching through a random
projection) against the explicit Jacobian, and deep mutual learning with a peer student."""
import math

import pytest
import torch
import torch.nn.functional as F

import sr_kd  # noqa: F401
from basicsr.losses import build_loss
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs
from zoo_util import TinySR


def inputs(student, teacher, lq, gt=None):
    sr_s = student(lq)
    with torch.no_grad():
        sr_t = teacher(lq)
    d = DistillInputs(feats_s=[], feats_t=[], sr_s=sr_s, sr_t=sr_t, lq=lq, gt=gt, student=student)
    d.teacher = teacher  # SobolevLoss reads the teacher network from the inputs
    return d


def nets(seed=40):
    torch.manual_seed(seed)
    return TinySR(4), TinySR(6)


def test_sobolev_matches_the_jacobian_projected_on_a_random_direction():
    student, teacher = nets()
    lq = torch.rand(2, 3, 4, 4)
    torch.manual_seed(7)
    value = build_loss({'type': 'SobolevLoss'})(inputs(student, teacher, lq))
    torch.manual_seed(7)
    r = torch.randn(2, 3, 8, 8).double()  # the same draw as the loss's projection

    def projected_gradient(net):
        jac = torch.autograd.functional.jacobian(lambda x: net(x.float()).double(), lq.double())  # (out..., in...)
        rows = []
        for n in range(2):
            g = (jac[n] * r[n].view(3, 8, 8, 1, 1, 1, 1)).sum(dim=(0, 1, 2))[n]  # d<r_n, out_n>/d lq_n
            rows.append(g.flatten() / g.norm())
        return torch.stack(rows)
    gs, gt = projected_gradient(student), projected_gradient(teacher)
    ref = float(((gs - gt) ** 2).sum(dim=1).mean())
    assert math.isclose(float(value.detach()), ref, rel_tol=1e-4)


def test_sobolev_gradients_reach_the_student_not_the_teacher():
    student, teacher = nets()
    for p in teacher.parameters():  # even a teacher that could take gradients is left untouched
        p.requires_grad_(True)
    value = build_loss({'type': 'SobolevLoss'})(inputs(student, teacher, torch.rand(2, 3, 4, 4)))
    value.backward()
    weights = [p for name, p in student.named_parameters() if name.endswith('weight')]  # biases leave J unchanged
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in weights)
    assert all(p.grad.abs().sum() > 0 for p in weights)
    assert all(p.grad is None for p in teacher.parameters())


def test_sobolev_is_zero_when_the_student_is_the_teacher():
    student, _ = nets()
    assert build_loss({'type': 'SobolevLoss'})(inputs(student, student, torch.rand(2, 3, 4, 4))).detach() < 1e-10


@pytest.mark.parametrize('n', [1, 2])
def test_sobolev_flat_patches_and_batch_of_one(n):
    student, teacher = nets()
    lq = torch.full((n, 3, 4, 4), 0.5)
    value = build_loss({'type': 'SobolevLoss', 'num_projections': 2})(inputs(student, teacher, lq))
    value.backward()
    assert torch.isfinite(value)
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)


def test_sobolev_refuses_without_networks():
    student, teacher = nets()
    d = inputs(student, teacher, torch.rand(1, 3, 4, 4))
    del d.teacher
    with pytest.raises(SRKDError, match='needs the student and teacher networks'):
        build_loss({'type': 'SobolevLoss'})(d)


PEER = {'type': 'IMDN', 'num_feat': 8, 'num_modules': 1, 'upscale': 2}


def test_dml_mutual_l1_and_the_peer_learns_the_task():
    student, teacher = nets()
    lq, gt = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8)
    loss = build_loss({'type': 'DMLLoss', 'network_peer': PEER})
    d = inputs(student, teacher, lq, gt)
    value = loss(d)
    sr_s = d.sr_s.detach()
    with torch.no_grad():
        sr_p = loss.peer(lq)
    ref = (sr_s - sr_p).abs().mean() * 2 + (sr_p - gt).abs().mean()
    assert math.isclose(float(value.detach()), float(ref), rel_tol=1e-5)
    sr_leaf = d.sr_s.detach().requires_grad_(True)
    loss(DistillInputs([], [], sr_leaf, d.sr_t, lq, gt)).backward()
    # the student only follows the peer: d/dsr_s of mean|sr_s - sr_p|
    assert torch.allclose(sr_leaf.grad, torch.sign(sr_s - sr_p) / sr_s.numel(), atol=1e-8)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in loss.peer.parameters())


@pytest.mark.parametrize('w', [0.25, 4.0])
def test_dml_weight_keeps_the_peers_symmetric(w):
    """Each peer minimises task + w x distance to the other (Zhang et al.): the peer's gradient is that of
    L1(peer, HR) + w L1(peer, student), the student's that of w L1(student, peer)."""
    student, teacher = nets()
    lq, gt = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8)
    loss = build_loss({'type': 'DMLLoss', 'network_peer': PEER, 'loss_weight': w})
    d = inputs(student, teacher, lq, gt)
    sr_leaf = d.sr_s.detach().requires_grad_(True)
    loss(DistillInputs([], [], sr_leaf, d.sr_t, lq, gt)).backward()
    got = [p.grad.clone() for p in loss.peer.parameters()]
    loss.peer.zero_grad(set_to_none=True)
    sr_p = loss.peer(lq)
    ((sr_p - gt).abs().mean() + w * (sr_p - sr_leaf.detach()).abs().mean()).backward()
    for a, p in zip(got, loss.peer.parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-5, atol=1e-8)
    assert torch.allclose(sr_leaf.grad, w * torch.sign(sr_leaf.detach() - sr_p.detach()) / sr_p.numel(), atol=1e-8)


def test_dml_flat_batch_of_one_is_finite():
    loss = build_loss({'type': 'DMLLoss', 'network_peer': PEER, 'criterion': 'mse'})
    lq = torch.full((1, 3, 4, 4), 0.3)
    sr_s = torch.full((1, 3, 8, 8), 0.3, requires_grad=True)
    value = loss(DistillInputs([], [], sr_s, sr_s.detach(), lq, torch.full((1, 3, 8, 8), 0.3)))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(sr_s.grad).all()


def test_dml_option_errors():
    with pytest.raises(SRKDError, match='network_peer'):
        build_loss({'type': 'DMLLoss'})
    with pytest.raises(SRKDError, match='criterion must be one of'):
        build_loss({'type': 'DMLLoss', 'network_peer': PEER, 'criterion': 'kl'})
    assert build_loss({'type': 'DMLLoss', 'network_peer': PEER}).fn is F.l1_loss


def test_dml_without_hr_batch_only_mutual():
    """The model's probe batch has no HR patch: the peer then only follows the student."""
    loss = build_loss({'type': 'DMLLoss', 'network_peer': PEER})
    lq, sr_s = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        sr_p = loss.peer(lq)
    value = loss(DistillInputs([], [], sr_s, sr_s, lq))
    assert torch.isclose(value, 2 * (sr_s - sr_p).abs().mean())
