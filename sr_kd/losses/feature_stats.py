"""Feature-statistics distillation (Gao et al., "Image Super-Resolution Using Knowledge Distillation",
ACCV 2018): each tapped feature is reduced along channels to one statistic map per sample, so student
and teacher widths may differ without connectors; maps are compared at several levels with weights.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs, DistillLoss, Levels, Number, Shapes, level_weights

STATS = ('mean_pow', 'pow_mean', 'max', 'min', 'std')


def spec_key(stat: str, p: Number) -> str:
    return f'{stat}_p{p:g}'


def stat_map(x: torch.Tensor, stat: str, p: Number = 2) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W) statistic along channels.

    mean_pow: (mean_c F)^p          (mean of the features, raised to p)
    pow_mean: mean_c |F|^p          (mean of p-th powers of absolute values, as attention transfer)
    max / min: max_c F / min_c F
    std: population std over channels at each position (the contrast statistic CCA uses)
    """
    x = x.float()
    if stat == 'mean_pow':
        return x.mean(dim=1).pow(p)
    if stat == 'pow_mean':
        return x.abs().pow(p).mean(dim=1)
    if stat == 'max':
        return x.amax(dim=1)
    if stat == 'min':
        return x.amin(dim=1)
    if stat == 'std':
        return x.var(dim=1, unbiased=False).add(1e-12).sqrt()
    raise SRKDError(f'unknown stat {stat!r}; choose one of {", ".join(STATS)}')


def normalize_map(m: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample L2 normalisation of a flattened map (as attention transfer); flat maps stay finite."""
    flat = m.flatten(1)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(eps)


@LOSS_REGISTRY.register()
class FeatureStatsLoss(DistillLoss):
    """Multi-level feature-statistics distillation (Gao et al. 2018).

    Args:
        stat: one of mean_pow, pow_mean, max, min, std.
        p: exponent for mean_pow / pow_mean.
        normalize: L2-normalise each sample's map before comparing (default on: raw maps are ~1e-5,
            orders of magnitude below the task loss, and change nothing at weight 1).
        criterion: 'mse' (squared L2 distance per sample, summed over positions, averaged over the
            batch; with normalised maps it lies in [0, 4]) or 'l1'.
        level_weights: one weight per pair (default equal).

    Example::

        - {type: FeatureStatsLoss, name: fs, stat: pow_mean, p: 2, normalize: true, loss_weight: 0.1}
    """

    def __init__(self, stat: str = 'pow_mean', p: Number = 2, normalize: bool = True, criterion: str = 'mse',
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(loss_weight)
        if stat not in STATS:
            raise SRKDError(f'FeatureStatsLoss: unknown stat {stat!r}; choose one of {", ".join(STATS)}')
        if criterion not in ('mse', 'l1'):
            raise SRKDError(f"FeatureStatsLoss: criterion must be 'mse' or 'l1', not {criterion!r}")
        self.stat, self.p, self.normalize, self.criterion = stat, p, normalize, criterion
        self._weights = level_weights

    def setup(self, s_shapes: Shapes, t_shapes: Shapes) -> None:
        self.weights = level_weights(self._weights, len(s_shapes))
        for (cs, hs, ws), (ct, ht, wt) in zip(s_shapes, t_shapes):
            if (hs, ws) != (ht, wt):
                raise SRKDError(f'FeatureStatsLoss needs equal spatial sizes, got {hs}x{ws} and {ht}x{wt}')

    @property
    def offline_maps(self) -> Tuple[Tuple[str, Number]]:
        """One channel per position is all this term needs of the teacher: the offline cache stores it."""
        return ((self.stat, self.p),)

    def level_loss(self, fs: torch.Tensor, mt: torch.Tensor) -> torch.Tensor:
        """Loss of one level: student features ``fs`` against the teacher's statistic map ``mt`` (N, H, W)."""
        ms = stat_map(fs, self.stat, self.p)
        if self.normalize:
            ms, mt = normalize_map(ms), normalize_map(mt)
        else:
            ms, mt = ms.flatten(1), mt.flatten(1)
        if self.criterion == 'mse':
            return (ms - mt).pow(2).sum(dim=1).mean() if self.normalize else F.mse_loss(ms, mt)
        return (ms - mt).abs().sum(dim=1).mean() if self.normalize else F.l1_loss(ms, mt)

    def compute(self, d: DistillInputs) -> torch.Tensor:
        weights = getattr(self, 'weights', None) or [1.0] * len(d.feats_s)
        if d.maps_t is not None:
            maps_t = d.maps_t[spec_key(self.stat, self.p)]
        else:
            maps_t = [stat_map(ft, self.stat, self.p) for ft in d.feats_t]
        return sum(w * self.level_loss(fs, mt) for w, fs, mt in zip(weights, d.feats_s, maps_t))
