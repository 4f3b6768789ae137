"""Per-position and per-map distillation: each tapped pair is compared on its own (hints, attention
maps, factors, neuron selectivity, activation boundaries, margins, channel attention, information).

Methods that compare channel by channel own a connector (student width -> teacher width); methods that
reduce channels to one map (AT, FT) or compare sets of channels (NST) need none.
"""
import math
from typing import Any, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses._zoo import ZooLoss, check_connector, make_connector
from sr_kd.losses.base import Levels, Number


class _ConnectedLoss(ZooLoss):
    """A per-level term whose student feature first goes through a connector."""

    def __init__(self, connector, level_weights: Levels = None, loss_weight=1.0):
        super().__init__(level_weights, loss_weight)
        self.connector_kind = check_connector(connector, self.owner)

    def build(self, s_shapes, t_shapes):
        self.connectors = nn.ModuleList(
            make_connector(self.connector_kind, s[0], t[0], self.owner) for s, t in zip(s_shapes, t_shapes))


@LOSS_REGISTRY.register()
class FitNetLoss(_ConnectedLoss):
    """FitNet hint (Romero et al., ICLR 2015): a regressor maps the student feature to the teacher's
    width and is trained with it to match the teacher feature (MSE).

    Example::

        - {type: FitNetLoss, name: fitnet, connector: conv1x1, loss_weight: 0.427}
    """

    def __init__(self, connector: str = 'conv1x1', level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(connector, level_weights, loss_weight)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.connectors[i](fs), ft)


def attention_map(x: torch.Tensor, p: Number) -> torch.Tensor:
    """Spatial attention of AT: mean over channels of |F|^p, L2-normalised per sample (flat maps stay finite)."""
    return F.normalize(x.abs().pow(p).mean(dim=1).flatten(1), dim=1)


@LOSS_REGISTRY.register()
class ATLoss(ZooLoss):
    """Attention transfer (Zagoruyko & Komodakis, ICLR 2017): normalised maps mean_c |F|^p (p=2) of
    student and teacher, mean squared difference as the official code (the paper weights it by
    beta/2 = 500).

    Args:
        p: the exponent of the attention map mean_c |F|^p.

    Example::

        - {type: ATLoss, name: at, p: 2, loss_weight: 116}
    """

    def __init__(self, p: Number = 2, level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.p = p

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        return (attention_map(fs, self.p) - attention_map(ft, self.p)).pow(2).mean()


@LOSS_REGISTRY.register()
class FTLoss(ZooLoss):
    """Factor transfer as in the seeds (Kim et al., NeurIPS 2018, without the paraphraser pre-training
    stage): factors are L2-normalised maps mean_c F^p1, compared by mean |difference|^p2 (p2=1: L1).

    Args:
        p1: the exponent of the factor mean_c F^p1.
        p2: the exponent of the difference (1: L1).

    Example::

        - {type: FTLoss, name: ft, p1: 2, p2: 1, loss_weight: 8.52}
    """

    def __init__(self, p1: Number = 2, p2: Number = 1, level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.p1, self.p2 = p1, p2

    def factor(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.pow(self.p1).mean(dim=1).flatten(1), dim=1)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        return (self.factor(fs) - self.factor(ft)).abs().pow(self.p2).mean()


@LOSS_REGISTRY.register()
class NSTLoss(ZooLoss):
    """Neuron selectivity transfer (Huang & Wang, arXiv 2017): each channel's map, L2-normalised over
    positions, is a sample of the layer's selectivity distribution; student and teacher distributions
    are matched by MMD with the polynomial kernel (x.y + c)^d, d=2, c=0 (widths may differ).

    Args:
        degree: the degree d of the polynomial kernel (x.y + c)^d.
        c: its constant c.

    Example::

        - {type: NSTLoss, name: nst, degree: 2, c: 0.0, loss_weight: 0.0491}
    """

    def __init__(self, degree: Number = 2, c: Number = 0.0, level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.degree, self.c = degree, c

    def kernel_mean(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (torch.bmm(a, b.transpose(1, 2)) + self.c).pow(self.degree).mean()

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        s, t = F.normalize(fs.flatten(2), dim=2), F.normalize(ft.flatten(2), dim=2)
        return self.kernel_mean(t, t) + self.kernel_mean(s, s) - 2 * self.kernel_mean(s, t)


@LOSS_REGISTRY.register()
class ABLoss(_ConnectedLoss):
    """Activation boundaries (Heo et al., AAAI 2019): the connected student response must be beyond a
    margin (1) on the same side of zero as the teacher's (alternative L2), so neurons switch on and
    off where the teacher's do. Deeper levels weigh more (2^(i-n+1), as the seeds); mean over elements.

    Args:
        margin: how far beyond zero the connected student response must be on the teacher's side.

    Example::

        - {type: ABLoss, name: ab, margin: 1.0, connector: conv1x1_bn, loss_weight: 0.288}
    """

    zero_when_features_equal = False  # a margin beyond zero is the target, not equality

    def __init__(self, margin: Number = 1.0, connector: str = 'conv1x1_bn',
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(connector, level_weights, loss_weight)
        self.margin = margin

    def default_weights(self, n: int) -> List[float]:
        return [2.0 ** (i - n + 1) for i in range(n)]

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        s = self.connectors[i](fs)
        return torch.where(ft > 0, F.relu(self.margin - s), F.relu(self.margin + s)).pow(2).mean()


@LOSS_REGISTRY.register()
class OFDLoss(_ConnectedLoss):
    """Overhaul of feature distillation (Heo et al., ICCV 2019): the teacher's pre-activation is lifted
    to a per-channel margin (the mean of its negative responses in the batch; SR nets have no BN to
    derive it from), the student goes through conv1x1+BN, and the partial L2 ignores positions where the
    student is already below a non-positive target.

    Example::

        - {type: OFDLoss, name: ofd, loss_weight: 0.461}
    """

    def __init__(self, connector: str = 'conv1x1_bn', level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(connector, level_weights, loss_weight)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        neg = (ft < 0).float()
        margin = (ft * neg).sum(dim=(0, 2, 3), keepdim=True) / neg.sum(dim=(0, 2, 3), keepdim=True).clamp_min(1)
        target = torch.maximum(ft, margin)
        s = self.connectors[i](fs)
        keep = ((s > target) | (target > 0)).float()
        return ((s - target).pow(2) * keep).mean()


class _ChannelAttention(nn.Module):
    """AFD's squeeze-excite on the teacher's pooled feature: a weight per channel, summing to 1."""

    def __init__(self, channels, att_f):
        super().__init__()
        mid = max(int(channels * att_f), 1)
        self.net = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(), nn.Conv2d(mid, channels, 1))
        for conv in (self.net[0], self.net[2]):  # the seed's initialisation
            nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(conv.bias)

    def forward(self, ft):
        rho = torch.sigmoid(self.net(ft.mean(dim=(2, 3), keepdim=True))).flatten(1)
        return rho / rho.sum(dim=1, keepdim=True)


@LOSS_REGISTRY.register()
class AFDLoss(_ConnectedLoss):
    """Attention feature distillation as in the seeds (Wang et al., ICLR 2020), not as the paper: the seed
    replaces the paper's attention with an SE block ("the original implementation of attention is
    unstable"): a squeeze-excite on the teacher's pooled feature gives a weight per channel (sigmoid,
    normalised to sum 1) that weighs per-channel distances between spatially L2-normalised maps.

    Args:
        att_f: the squeeze-excite reduction of the channel attention (hidden width = att_f x channels).

    Example::

        - {type: AFDLoss, name: afd, att_f: 1.0, loss_weight: 149}
    """

    def __init__(self, att_f: Number = 1.0, connector: str = 'auto', level_weights: Levels = None,
                 loss_weight: Number = 1.0):
        super().__init__(connector, level_weights, loss_weight)
        self.att_f = att_f

    def build(self, s_shapes: List[Tuple[int, ...]], t_shapes: List[Tuple[int, ...]]) -> None:
        super().build(s_shapes, t_shapes)
        self.attention = nn.ModuleList(_ChannelAttention(t[0], self.att_f) for t in t_shapes)

    @staticmethod
    def spatial_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        return x / (x.norm(dim=(2, 3), keepdim=True) + eps)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        rho = self.attention[i](ft)
        s, t = self.spatial_normalize(self.connectors[i](fs)), self.spatial_normalize(ft)
        return (rho * (s - t).pow(2).mean(dim=(2, 3))).sum(dim=1).mean()


class _VIDHead(nn.Module):
    """VID's regressor (three 1x1 convs) for the mean and a softplus-parametrised variance per channel."""

    def __init__(self, cs, mid, ct, init_var, eps):
        super().__init__()
        self.regressor = nn.Sequential(nn.Conv2d(cs, mid, 1, bias=False), nn.ReLU(),
                                       nn.Conv2d(mid, mid, 1, bias=False), nn.ReLU(),
                                       nn.Conv2d(mid, ct, 1, bias=False))
        self.alpha = nn.Parameter(torch.full((ct,), math.log(math.expm1(init_var - eps))))
        self.eps = eps

    def forward(self, fs, ft):
        var = (F.softplus(self.alpha) + self.eps).view(1, -1, 1, 1)
        return 0.5 * ((self.regressor(fs) - ft).pow(2) / var + var.log()).mean()


@LOSS_REGISTRY.register()
class VIDLoss(ZooLoss):
    """Variational information distillation (Ahn et al., CVPR 2019): maximise a variational lower bound
    of the mutual information: a regressor predicts the teacher feature from the student's under a
    Gaussian with learned per-channel variance (init 5); the loss is its negative log-likelihood.

    Args:
        init_var: the initial per-channel variance.
        eps: the smallest variance.
        mid_channels: the regressor's hidden width (default: the teacher's).

    Example::

        - {type: VIDLoss, name: vid, init_var: 5.0, loss_weight: 137}
    """

    zero_when_features_equal = False  # its minimum depends on the learned variance

    def __init__(self, init_var: Number = 5.0, eps: Number = 1e-5, mid_channels: Any = None,
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        if init_var <= eps:
            raise SRKDError(f'VIDLoss: init_var must exceed eps ({eps}), got {init_var}')
        self.init_var, self.eps, self.mid_channels = init_var, eps, mid_channels

    def build(self, s_shapes: List[Tuple[int, ...]], t_shapes: List[Tuple[int, ...]]) -> None:
        self.heads = nn.ModuleList(_VIDHead(s[0], self.mid_channels or t[0], t[0], self.init_var, self.eps)
                                   for s, t in zip(s_shapes, t_shapes))

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        return self.heads[i](fs, ft)
