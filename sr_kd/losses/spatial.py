"""Spatial structure: how positions relate inside one feature (pair-wise affinity graph) and how one
level flows into the next (FSP). Both suit SR, where the structure of the image is the task.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses._zoo import ZooLoss, check_connector, make_connector, match_size
from sr_kd.losses.base import DistillInputs, Levels, Number


@LOSS_REGISTRY.register()
class PairWiseLoss(ZooLoss):
    """Structured pair-wise distillation (Liu et al., CVPR 2019): nodes are pooled from the feature, all
    node pairs are connected (global range) with cosine affinity, and the student's affinity graph follows
    the teacher's (squared difference, averaged over node pairs and the batch). Widths may differ.

    ``variant: paper`` (default): beta x beta cells pooled into nodes (``node_size`` 2, ``pool`` avg, as
    the paper's best setting; ``pool: max`` max-pools the same cells). ``variant: released`` follows the
    released code (CriterionPairWiseforWholeFeatAfterPool): a fixed grid of nodes, each max-pooled over a
    window of ``scale`` (0.5) times the feature's height and width (so 2 x 2 nodes), and the channel
    norm of each node (plus 1e-8) is detached: the loss value is the cosine's, its gradient is not.

    Args:
        node_size: the pooling window that makes a node.
        pool: avg or max pooling of the nodes.
        variant: paper or released (the authors' code).
        scale: the pooled size as a share of the map (released).

    Example::

        - {type: PairWiseLoss, name: pair_wise, node_size: 2, pool: avg, variant: paper, loss_weight: 0.152}
    """

    def __init__(self, node_size: Number = 2, pool: str = 'avg', variant: str = 'paper', scale: Number = 0.5,
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        if pool not in ('avg', 'max'):
            raise SRKDError(f"PairWiseLoss: pool must be 'avg' or 'max', not {pool!r}")
        if variant not in ('paper', 'released'):
            raise SRKDError(f"PairWiseLoss: variant must be 'paper' or 'released', not {variant!r}")
        if int(node_size) < 1 or not 0 < float(scale) <= 1:
            raise SRKDError(f'PairWiseLoss: node_size must be a positive integer and scale in (0, 1], '
                            f'got {node_size} and {scale}')
        self.node_size, self.pool, self.variant, self.scale = int(node_size), pool, variant, float(scale)

    def nodes(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, M) node features, unit length along C."""
        if self.variant == 'paper':
            pool = F.avg_pool2d if self.pool == 'avg' else F.max_pool2d
            return F.normalize(pool(x, self.node_size, ceil_mode=True).flatten(2), dim=1)
        kernel = (max(int(x.shape[-2] * self.scale), 1), max(int(x.shape[-1] * self.scale), 1))
        pooled = F.max_pool2d(x, kernel, stride=kernel, ceil_mode=True).flatten(2)
        return pooled / (pooled.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8).detach()

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        nodes = self.nodes(x)
        return torch.bmm(nodes.transpose(1, 2), nodes)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        a_s, a_t = self.affinity(fs), self.affinity(ft)
        return (a_s - a_t).pow(2).mean()


def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """FSP matrix between two levels: (N, Ca, Cb) inner products over positions, divided by H*W."""
    a, b = match_size(a, b)
    return torch.einsum('nchw,ndhw->ncd', a, b) / (a.shape[-2] * a.shape[-1])


@LOSS_REGISTRY.register()
class FSPLoss(ZooLoss):
    """Flow of solution procedure (Yim et al., CVPR 2017): Gram matrices between consecutive tapped
    levels describe how the network transforms one into the next; the student's flows follow the
    teacher's (mean squared difference). Connectors bring student widths to the teacher's where they
    differ. Needs two pairs or more.

    Example::

        - {type: FSPLoss, name: fsp, loss_weight: 7.08}
    """

    def __init__(self, connector: str = 'auto', level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.connector_kind = check_connector(connector, self.owner)

    def build(self, s_shapes: List[Tuple[int, ...]], t_shapes: List[Tuple[int, ...]]) -> None:
        if len(s_shapes) < 2:
            raise SRKDError('FSPLoss needs at least two distill.pairs (it compares flows between levels)')
        self.connectors = nn.ModuleList(
            make_connector(self.connector_kind, s[0], t[0], self.owner) for s, t in zip(s_shapes, t_shapes))

    def distill(self, fs: List[torch.Tensor], ft: List[torch.Tensor], d: DistillInputs) -> torch.Tensor:
        fs = [c(f) for c, f in zip(self.connectors, fs)]
        return sum(self.weights[i] * (flow(fs[i - 1], fs[i]) - flow(ft[i - 1], ft[i])).pow(2).mean()
                   for i in range(1, len(fs)))
