"""Holistic distillation (Liu et al., "Structured Knowledge Distillation for Semantic Segmentation",
CVPR 2019; seed 002), SR analog: a conditional critic judges (LR, SR) pairs, the teacher's SR being
"real" and the student's "fake"; the critic learns the Wasserstein distance between the two with a
gradient penalty (WGAN-GP, as the paper), the student learns to raise its own score.

The critic is the term's own part: its weights are saved with the run (the term's state), its optimizer
is the term's own (``own_state``), and it is trained by ``own_step`` after each student step, never by
the student's optimizer: its parameters have ``requires_grad`` off outside ``own_step``, so the
student's loss reaches the student through the critic but leaves the critic's gradients untouched.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs, DistillLoss, Number, OwnOptimizer, Shapes

_OPTIMIZERS = {'SGD': torch.optim.SGD, 'Adam': torch.optim.Adam}
# the released code's step: lr 4e-4 and weight decay 5e-4 (its run_train_val.sh) on a loss scaled by 0.1
_OPTIM_DEFAULTS = {'SGD': {'lr': 4e-5, 'momentum': 0.9, 'weight_decay': 5e-3},
                   'Adam': {'lr': 1e-4, 'betas': (0.0, 0.9)}}  # WGAN-GP's (Gulrajani et al.)


class SelfAttention(nn.Module):
    """The seed's self-attention block (SAGAN): 1x1 query/key to C/8, value to C, softmax over positions,
    ``gamma * attended + x`` with gamma starting at 0 (the block starts as the identity)."""

    def __init__(self, dim: int):
        super().__init__()
        self.query, self.key = nn.Conv2d(dim, max(dim // 8, 1), 1), nn.Conv2d(dim, max(dim // 8, 1), 1)
        self.value = nn.Conv2d(dim, dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (n, hw, c/8)
        attention = torch.softmax(q @ self.key(x).flatten(2), dim=-1)  # (n, hw, hw), rows sum to 1
        out = self.value(x).flatten(2) @ attention.transpose(1, 2)  # (n, c, hw)
        return self.gamma * out.view(n, c, h, w) + x


class Critic(nn.Module):
    """The released code's discriminator, on (LR upsampled, SR) pairs: four 4x4 stride-2 convolutions with
    LeakyReLU 0.1, self-attention after the third and the fourth, a 3x3 convolution to one channel and an
    average pool to one score per sample (the paper's "pooling layer"). Inputs in [0, 1] are mapped to
    [-1, 1]. No batch norm (the gradient penalty is per sample); no spectral norm (the penalty bounds the
    gradient, as in the paper)."""

    def __init__(self, in_ch: int = 3, dim: int = 64):
        super().__init__()
        chans = [2 * in_ch, dim, 2 * dim, 4 * dim, 8 * dim]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
        self.attn3, self.attn4 = SelfAttention(4 * dim), SelfAttention(8 * dim)
        self.last = nn.Conv2d(8 * dim, 1, 3, padding=1)

    def forward(self, cond: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        x = torch.cat([cond, sr], dim=1) * 2 - 1
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.1)
            if i == 2:
                x = self.attn3(x)
            elif i == 3:
                x = self.attn4(x)
        return self.last(x).mean(dim=(1, 2, 3))


def gradient_penalty(critic: nn.Module, cond: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """mean_i (||d critic(cond, x_i) / d x_i||_2 - 1)^2 at x_i = a_i real_i + (1 - a_i) fake_i, a_i ~ U(0, 1)."""
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(cond, x).sum(), x, create_graph=True)[0]
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@LOSS_REGISTRY.register()
class HolisticLoss(OwnOptimizer, DistillLoss):
    """Holistic distillation (Liu et al., CVPR 2019), SR analog. The student's loss is -mean critic(LR, SR_s)
    (the released code's generator loss); after each student step the critic takes ``critic_steps``
    steps on mean critic(LR, SR_s) - mean critic(LR, SR_t) + ``gp_weight`` x gradient penalty (lambda 10).
    The condition is the LR input, bicubic-upsampled to the SR size and concatenated to the image.

    Defaults follow the released code: critic width 64; its optimizer SGD with momentum 0.9. There the
    critic's loss is also scaled by lambda_d = 0.1 with lr 4e-4 and weight decay 5e-4 (its run script);
    here the critic's loss is not scaled by ``loss_weight`` (so the student's weight does not change how
    the critic learns), and the equivalent step is lr 4e-5, weight decay 5e-3. The critic's rate follows
    the student's schedule, as the released code decays both together. ``critic_optim`` may name Adam
    instead (WGAN-GP's own choice is Adam, lr 1e-4, betas [0, 0.9]). HR patches of 16 px or more; one
    process (the critic is not synchronised across DDP ranks, so distributed training is refused).

    Args:
        dim: the critic's width.
        gp_weight: the weight of the gradient penalty.
        critic_steps: critic steps after each student step.
        critic_optim: the critic's optimizer ({type: SGD or Adam, lr: ...}).

    Example::

        - {type: HolisticLoss, name: holistic, dim: 16, gp_weight: 10.0, critic_steps: 1, loss_weight: 0.0177}
    """

    uses_features = False

    def __init__(self, dim: Number = 64, gp_weight: Number = 10.0, critic_steps: Number = 1, critic_optim: Any = None,
                 loss_weight: Number = 1.0):
        super().__init__(loss_weight)
        optim = {'type': 'SGD', **(critic_optim or {})}
        if optim['type'] not in _OPTIMIZERS:
            raise SRKDError(f'HolisticLoss: critic_optim type must be one of {", ".join(_OPTIMIZERS)}, '
                            f'not {optim["type"]!r}')
        if int(critic_steps) < 1 or int(dim) < 1:
            raise SRKDError(f'HolisticLoss: dim and critic_steps must be positive, got {dim} and {critic_steps}')
        self.optim_opt = {**_OPTIM_DEFAULTS[optim['type']], **optim}
        self.gp_weight, self.critic_steps = float(gp_weight), int(critic_steps)
        self.critic = Critic(dim=int(dim)).requires_grad_(False)
        self.own_lr = self.optim_opt['lr']
        self.critic_loss = None  # the last critic step's loss (logged by nothing; for inspection and tests)

    def setup(self, s_shapes: Shapes, t_shapes: Shapes) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            raise SRKDError('HolisticLoss trains its critic in one process: distributed training is not supported')

    def build_optimizer(self) -> torch.optim.Optimizer:
        kwargs = {k: v for k, v in self.optim_opt.items() if k != 'type'}
        return _OPTIMIZERS[self.optim_opt['type']](list(self.critic.parameters()), **kwargs)

    @staticmethod
    def condition(lq: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        if min(sr.shape[-2:]) < 16:
            raise SRKDError(f'HolisticLoss needs SR patches of at least 16 px, got {sr.shape[-2]}x{sr.shape[-1]}')
        return F.interpolate(lq.float(), size=sr.shape[-2:], mode='bicubic', align_corners=False)

    def compute(self, d: DistillInputs) -> torch.Tensor:
        with torch.autocast(device_type=d.lq.device.type, enabled=False):
            return -self.critic(self.condition(d.lq, d.sr_s), d.sr_s.float()).mean()

    def own_step(self, d: DistillInputs) -> None:
        """Train the critic on this step's pair: teacher SR real, student SR (detached) fake."""
        with torch.autocast(device_type=d.lq.device.type, enabled=False), torch.enable_grad():
            real, fake = d.sr_t.detach().float(), d.sr_s.detach().float()
            cond = self.condition(d.lq.detach(), real)
            with self.own_training(self.critic, d) as opt:
                for _ in range(self.critic_steps):
                    opt.zero_grad(set_to_none=True)
                    loss = (self.critic(cond, fake).mean() - self.critic(cond, real).mean()
                            + self.gp_weight * gradient_penalty(self.critic, cond, real, fake))
                    loss.backward()
                    opt.step()
                    self.critic_loss = float(loss.detach())
