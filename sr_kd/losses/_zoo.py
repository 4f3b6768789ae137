"""What the zoo's feature terms share: per-level weights, connectors chosen by name, a batch-size check,
and float32 math outside autocast (bf16 matmuls lose the small differences these losses compare).

Cross-level terms (FSP, IRG, KD-SVD, MHGD) weight the transition from level l-1 to level l by the
weight of level l, so ``level_weights`` always has one entry per ``distill.pairs`` entry.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sr_kd.distill.connectors import conv1x1, conv3x3
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs, DistillLoss, Levels, Number, Shapes, level_weights

CONNECTORS = ('auto', 'identity', 'conv1x1', 'conv1x1_bn', 'conv3x3')


def check_connector(kind: str, owner: str) -> str:
    if kind not in CONNECTORS:
        raise SRKDError(f'{owner}: connector must be one of {", ".join(CONNECTORS)}, not {kind!r}')
    return kind


def make_connector(kind: str, cs: int, ct: int, owner: str) -> nn.Module:
    """A student->teacher channel adapter; 'auto' is identity for equal widths, else a 1x1 conv."""
    if kind == 'auto':
        kind = 'identity' if cs == ct else 'conv1x1'
    if kind == 'identity':
        if cs != ct:
            raise SRKDError(f'{owner}: connector identity needs equal channels, got student {cs} and teacher {ct}')
        return nn.Identity()
    if kind == 'conv3x3':
        return conv3x3(cs, ct)
    return conv1x1(cs, ct, bn=kind == 'conv1x1_bn')


def rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C*H*W): one vector per training patch, for relations over the batch."""
    return x.flatten(1)


def match_size(a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two maps to the other's H x W (levels of one network may differ)."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    if a.shape[-2] * a.shape[-1] > b.shape[-2] * b.shape[-1]:
        return F.adaptive_avg_pool2d(a, b.shape[-2:]), b
    return a, F.adaptive_avg_pool2d(b, a.shape[-2:])


def match_channels(a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Average adjacent channels of the wider map down to the narrower width (IRG's transformation)."""
    ca, cb = a.shape[1], b.shape[1]
    if ca == cb:
        return a, b

    def squeeze(x, c):
        n, _, h, w = x.shape
        return F.adaptive_avg_pool1d(x.flatten(2).transpose(1, 2), c).transpose(1, 2).reshape(n, c, h, w)
    return (squeeze(a, cb), b) if ca > cb else (a, squeeze(b, ca))


class ZooLoss(DistillLoss):
    """Base of the feature terms: ``setup`` checks shapes and calls ``build`` (connectors); ``compute``
    checks the batch, leaves autocast, casts to float32, detaches the teacher and calls ``distill``,
    which by default sums ``level(i, fs, ft)`` over the pairs with their weights.

    Args:
        level_weights: one weight per pair of distill.pairs (default: equal, or the method's own).
        connector: how a student feature is brought to the teacher's width, where a term has one: auto,
            identity, conv1x1, conv1x1_bn or conv3x3.
    """

    def __init__(self, level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(loss_weight)
        self._level_weights = level_weights
        self.weights = None

    @property
    def owner(self) -> str:
        return type(self).__name__

    def default_weights(self, n: int) -> List[float]:
        return [1.0] * n

    def setup(self, s_shapes: Shapes, t_shapes: Shapes) -> None:
        if len(s_shapes) != len(t_shapes):
            raise SRKDError(f'{self.owner}: {len(s_shapes)} student taps but {len(t_shapes)} teacher taps')
        for (cs, hs, ws), (ct, ht, wt) in zip(s_shapes, t_shapes):
            if (hs, ws) != (ht, wt):
                raise SRKDError(f'{self.owner} needs equal spatial sizes per pair, got {hs}x{ws} and {ht}x{wt}')
        n = len(s_shapes)
        self.weights = (self.default_weights(n) if self._level_weights is None
                        else level_weights(self._level_weights, n))
        self.build([tuple(s) for s in s_shapes], [tuple(t) for t in t_shapes])

    def build(self, s_shapes: List[Tuple[int, ...]], t_shapes: List[Tuple[int, ...]]) -> None:
        """Create the term's trainable parts from the tapped shapes (nothing by default)."""

    def compute(self, d: DistillInputs) -> torch.Tensor:
        if self.weights is None:
            raise RuntimeError(f'{self.owner}.setup(s_shapes, t_shapes) must run before compute')
        n = d.feats_s[0].shape[0]
        if n < self.min_batch:
            raise SRKDError(f'{self.owner} needs a batch of at least {self.min_batch}, got {n}')
        with torch.autocast(device_type=d.feats_s[0].device.type, enabled=False):
            fs = [f.float() for f in d.feats_s]
            ft = [f.detach().float() for f in d.feats_t]
            return self.distill(fs, ft, d)

    def distill(self, fs: List[torch.Tensor], ft: List[torch.Tensor], d: DistillInputs) -> torch.Tensor:
        return sum(w * self.level(i, s, t) for i, (w, s, t) in enumerate(zip(self.weights, fs, ft)))

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
