"""Holistic distillation (structured KD, seed 002) as an SR analog: the seed's self-attention block, the
WGAN-GP gradient penalty, a critic that learns to tell the teacher's SR from the student's and never takes
a gradient from the student's loss, and a student that receives the critic's gradient."""
import math

import pytest
import torch

import sr_kd  # noqa: F401
from basicsr.losses import build_loss
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs
from sr_kd.losses.holistic import SelfAttention, gradient_penalty


def test_self_attention_is_the_seeds_block():
    """out[:, :, i] = gamma * sum_j softmax_j(q_i . k_j) v_j + x_i, written out position by position."""
    torch.manual_seed(40)
    block = SelfAttention(16)
    with torch.no_grad():
        block.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 2)
    got = block(x).detach().double()
    q = torch.einsum('oc,nchw->nohw', block.query.weight[:, :, 0, 0], x) + block.query.bias.view(1, -1, 1, 1)
    k = torch.einsum('oc,nchw->nohw', block.key.weight[:, :, 0, 0], x) + block.key.bias.view(1, -1, 1, 1)
    v = torch.einsum('oc,nchw->nohw', block.value.weight[:, :, 0, 0], x) + block.value.bias.view(1, -1, 1, 1)
    q, k, v, xs = (t.detach().double().flatten(2) for t in (q, k, v, x))
    for n in range(2):
        for i in range(6):
            e = [float(q[n, :, i] @ k[n, :, j]) for j in range(6)]
            z = sum(math.exp(a) for a in e)
            ref = 0.7 * sum(math.exp(e[j]) / z * v[n, :, j] for j in range(6)) + xs[n, :, i]
            assert torch.allclose(got.flatten(2)[n, :, i], ref, atol=1e-5)


def test_self_attention_starts_as_identity():
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(SelfAttention(8)(x), x)


def test_gradient_penalty_of_a_linear_critic():
    """For critic(c, x) = <w, x> the gradient is w everywhere: the penalty is (||w|| - 1)^2."""
    w = torch.randn(3, 4, 4)
    real, fake, cond = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    gp = gradient_penalty(lambda c, x: (x * w).flatten(1).sum(dim=1), cond, real, fake)
    assert float(gp) == pytest.approx((float(w.norm()) - 1) ** 2, rel=1e-5)


def _inputs(n=4, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    lq = torch.rand(n, 3, 8, 8, generator=g)
    sr_t = torch.rand(n, 3, 16, 16, generator=g)
    sr_s = (sr_t + 0.2 * torch.randn(n, 3, 16, 16, generator=g)).clamp(0, 1).requires_grad_(requires_grad)
    return DistillInputs([], [], sr_s, sr_t, lq)


def test_student_gets_the_critics_gradient_and_the_critic_none():
    torch.manual_seed(41)
    loss = build_loss({'type': 'HolisticLoss', 'dim': 8, 'loss_weight': 0.1})
    d = _inputs()
    value = loss(d)
    assert float(value.detach()) == pytest.approx(-0.1 * float(loss.critic(loss.condition(d.lq, d.sr_s), d.sr_s.detach()).mean()),
                                         rel=1e-5)
    value.backward()
    # the student's gradient is the critic's: d/d sr_s of -0.1 mean critic(LR, sr_s), through a copy
    x = d.sr_s.detach().requires_grad_(True)
    critic = loss.critic
    with torch.enable_grad():
        ref = torch.autograd.grad(-0.1 * critic(loss.condition(d.lq, x), x).mean(), x)[0]
    assert d.sr_s.grad.abs().sum() > 0 and torch.allclose(d.sr_s.grad, ref, atol=1e-8)
    assert all(p.grad is None for p in loss.critic.parameters())
    assert not any(p.requires_grad for p in loss.parameters())  # so the student's optimizer never holds them


def test_critic_learns_to_tell_teacher_from_student():
    torch.manual_seed(42)
    loss = build_loss({'type': 'HolisticLoss', 'dim': 8, 'critic_optim': {'type': 'Adam', 'lr': 1e-3}})
    d = _inputs(requires_grad=False)

    def gap():
        with torch.no_grad():
            cond = loss.condition(d.lq, d.sr_t)
            return float(loss.critic(cond, d.sr_t).mean() - loss.critic(cond, d.sr_s).mean())
    before = gap()
    teacher_out = d.sr_t.clone()
    for _ in range(30):
        loss.own_step(d)
    assert gap() > before + 0.5  # the Wasserstein estimate (real minus fake) grows
    assert torch.equal(d.sr_t, teacher_out) and not d.sr_t.requires_grad
    assert all(p.grad is None and not p.requires_grad for p in loss.critic.parameters())


def test_own_state_restores_the_critic_optimizer():
    torch.manual_seed(43)
    a = build_loss({'type': 'HolisticLoss', 'dim': 8})
    d = _inputs(requires_grad=False)
    for _ in range(2):
        a.own_step(d)
    b = build_loss({'type': 'HolisticLoss', 'dim': 8})
    b.load_state_dict(a.state_dict())
    b.load_own_state(a.own_state())
    for m in (a, b):
        torch.manual_seed(44)
        m.own_step(d)
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), k


def test_options_and_small_patches_refused_in_one_line():
    with pytest.raises(SRKDError, match='critic_optim type must be one of'):
        build_loss({'type': 'HolisticLoss', 'critic_optim': {'type': 'RMSprop'}})
    with pytest.raises(SRKDError, match='must be positive'):
        build_loss({'type': 'HolisticLoss', 'critic_steps': 0})
    loss = build_loss({'type': 'HolisticLoss', 'dim': 8})
    d = DistillInputs([], [], torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4, 4))
    with pytest.raises(SRKDError, match='at least 16 px'):
        loss(d)
