"""Relations over the batch: each training patch is an instance, its tapped feature flattened to one
vector; the student reproduces how the teacher relates the patches of a batch (similarities,
correlations, distances and angles, probabilities, graphs), so widths may differ without connectors.

All but CRD compare relations among the patches of a batch (``BatchRelationLoss``): they need 2 or more.
CRD compares each patch with a memory of earlier patches too, so it works from batch 1.
"""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.losses._zoo import ZooLoss, match_channels, match_size, rows
from sr_kd.losses.base import DistillInputs, Levels, Number


class BatchRelationLoss(ZooLoss):
    """A term on the relations among the patches of a batch: with one patch there is none."""

    min_batch = 2


@LOSS_REGISTRY.register()
class SPLoss(BatchRelationLoss):
    """Similarity-preserving distillation (Tung & Mori, ICCV 2019): row-normalised Gram matrices of the
    batch (N x N) must agree; squared Frobenius distance over N^2.

    Example::

        - {type: SPLoss, name: sp, loss_weight: 1.31}
    """

    @staticmethod
    def similarity(x: torch.Tensor) -> torch.Tensor:
        v = rows(x)
        return F.normalize(v @ v.t(), dim=1)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        n = fs.shape[0]
        return (self.similarity(fs) - self.similarity(ft)).pow(2).sum() / (n * n)


@LOSS_REGISTRY.register()
class CCLoss(BatchRelationLoss):
    """Correlation congruence (Peng et al., ICCV 2019): correlations between patches through a Gaussian
    RBF kernel on L2-normalised embeddings, approximated by its Taylor expansion of order P (2),
    gamma 0.4; MSE between the student's and teacher's correlation matrices.

    Example::

        - {type: CCLoss, name: cc, gamma: 0.4, p_order: 2, loss_weight: 0.306}

    Args:
        gamma: the RBF kernel width.
        p_order: the order of its Taylor expansion.
    """

    def __init__(self, gamma: Number = 0.4, p_order: Number = 2, level_weights: Levels = None,
                 loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        g2 = 2 * gamma  # exp(-2 gamma (1 - sim)) = sum over p of exp(-2 gamma) (2 gamma)^p / p! * sim^p
        self.taylor = [math.exp(-g2) * g2 ** p / math.factorial(p) for p in range(int(p_order) + 1)]

    def correlation(self, x: torch.Tensor) -> torch.Tensor:
        e = F.normalize(rows(x), dim=1)
        sim = e @ e.t()
        return sum(c * sim.pow(p) for p, c in enumerate(self.taylor))

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.correlation(fs), self.correlation(ft))


def pair_distances(v: torch.Tensor, squared: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between rows, zero diagonal; clamped before sqrt so equal rows stay finite."""
    sq = v.pow(2).sum(dim=1)
    d = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * v @ v.t()).clamp_min(eps)
    if not squared:
        d = d.sqrt()
    return d * (1 - torch.eye(len(v), device=v.device, dtype=v.dtype))


@LOSS_REGISTRY.register()
class RKDLoss(BatchRelationLoss):
    """Relational knowledge distillation (Park et al., CVPR 2019): pairwise distances (normalised by
    their mean) and triplet angles among the patches of a batch, matched with the Huber loss;
    weights 25 (distance) and 50 (angle).

    Args:
        w_dist: the weight of the distance term.
        w_angle: the weight of the angle term.

    Example::

        - {type: RKDLoss, name: rkd, w_dist: 25.0, w_angle: 50.0, loss_weight: 0.0138}
    """

    def __init__(self, w_dist: Number = 25.0, w_angle: Number = 50.0, level_weights: Levels = None,
                 loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.w_dist, self.w_angle = w_dist, w_angle

    @staticmethod
    def distance(v: torch.Tensor) -> torch.Tensor:
        d = pair_distances(v)
        mean = d.sum() / (d > 0).sum().clamp_min(1)
        return d / mean.clamp_min(1e-12)

    @staticmethod
    def angle(v: torch.Tensor) -> torch.Tensor:
        e = F.normalize(v.unsqueeze(0) - v.unsqueeze(1), dim=2)  # e[a, b] = unit(v_b - v_a)
        return torch.bmm(e, e.transpose(1, 2)).flatten()  # cos of the angle at a between b and c

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        s, t = rows(fs), rows(ft)
        loss = 0
        if self.w_dist:
            loss = loss + self.w_dist * F.smooth_l1_loss(self.distance(s), self.distance(t))
        if self.w_angle:
            loss = loss + self.w_angle * F.smooth_l1_loss(self.angle(s), self.angle(t))
        return loss


@LOSS_REGISTRY.register()
class PKTLoss(BatchRelationLoss):
    """Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018): cosine similarities among the
    patches, mapped to [0, 1] and normalised per row into conditional probabilities; KL(teacher||student).

    Args:
        eps: keeps the probabilities and the KL finite.

    Example::

        - {type: PKTLoss, name: pkt, loss_weight: 23.7}
    """

    def __init__(self, eps: Number = 1e-7, level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.eps = eps

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        v = rows(x)
        v = v / (v.norm(dim=1, keepdim=True) + self.eps)
        sim = (v @ v.t() + 1) / 2
        return sim / sim.sum(dim=1, keepdim=True)

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        ps, pt = self.probabilities(fs), self.probabilities(ft)
        return (pt * torch.log((pt + self.eps) / (ps + self.eps))).mean()


def max_normalized(d: torch.Tensor) -> torch.Tensor:
    return d / d.max().clamp_min(1e-12)


@LOSS_REGISTRY.register()
class IRGLoss(BatchRelationLoss):
    """Instance relationship graph (Liu et al., CVPR 2019): vertices (the instances' outputs: here the SR
    images), edges (squared distances between patches at each level, max-normalised) and the
    transformation between consecutive levels (each patch's squared distance from one level to the
    next, max-normalised over the batch); weights 0.1, 5, 5 as the seeds. The level weight of level l
    scales its edges and the transformation from level l-1 to l (see _zoo).

    Args:
        w_vert: the weight of the vertex term.
        w_edge: the weight of the edge term.
        w_tran: the weight of the transformation term.

    Example::

        - {type: IRGLoss, name: irg, w_vert: 0.1, w_edge: 5.0, w_tran: 5.0, loss_weight: 0.045}
    """

    def __init__(self, w_vert: Number = 0.1, w_edge: Number = 5.0, w_tran: Number = 5.0,
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.w_vert, self.w_edge, self.w_tran = w_vert, w_edge, w_tran

    @staticmethod
    def transformation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = match_size(*match_channels(a, b))
        return max_normalized((rows(a) - rows(b)).pow(2).sum(dim=1))

    def distill(self, fs: List[torch.Tensor], ft: List[torch.Tensor], d: DistillInputs) -> torch.Tensor:
        vert = F.mse_loss(d.sr_s.float(), d.sr_t.detach().float())
        edge = sum(w * F.mse_loss(max_normalized(pair_distances(rows(s), squared=True)),
                                  max_normalized(pair_distances(rows(t), squared=True)))
                   for w, s, t in zip(self.weights, fs, ft)) / len(fs)
        tran = vert.new_zeros(())
        for i in range(1, len(fs)):
            tran = tran + self.weights[i] * F.mse_loss(self.transformation(fs[i - 1], fs[i]),
                                                       self.transformation(ft[i - 1], ft[i]))
        tran = tran / max(len(fs) - 1, 1)
        return self.w_vert * vert + self.w_edge * edge + self.w_tran * tran


class _Memory(nn.Module):
    """A FIFO queue of recent embeddings (the negatives). It starts empty and only its filled slots are
    read, so every negative is a real patch's embedding (CRD's bank starts from random vectors, which at
    an SR budget of a few thousand patches would be most of a 16384-slot memory). Saved with the run."""

    def __init__(self, size, dim):
        super().__init__()
        self.register_buffer('bank', torch.zeros(size, dim))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('filled', torch.zeros((), dtype=torch.long))

    def negatives(self):
        return self.bank[: int(self.filled)]

    def push(self, z):
        z = z.detach()[: len(self.bank)]
        idx = (self.ptr + torch.arange(len(z), device=z.device)) % len(self.bank)
        self.bank = self.bank.index_copy(0, idx, z.to(self.bank.dtype))  # out of place: the step's graph keeps the old bank
        self.ptr = (self.ptr + len(z)) % len(self.bank)
        self.filled = (self.filled + len(z)).clamp_max(len(self.bank))


class _CRDHead(nn.Module):
    def __init__(self, cs, ct, feat_dim, nce_k):
        super().__init__()
        self.embed_s, self.embed_t = nn.Linear(cs, feat_dim), nn.Linear(ct, feat_dim)
        self.memory_s, self.memory_t = _Memory(nce_k, feat_dim), _Memory(nce_k, feat_dim)


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, memory: torch.Tensor, tau: float) -> torch.Tensor:
    """-log softmax of each anchor's positive among all positives of the batch (the other patches are
    negatives) and the memory's embeddings, averaged over anchors."""
    logits = torch.cat([anchor @ positive.t(), anchor @ memory.t()], dim=1) / tau
    return F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device))


@LOSS_REGISTRY.register()
class CRDLoss(ZooLoss):
    """Contrastive representation distillation (Tian et al., ICLR 2020), SR-adapted: the instance is the
    training patch; pooled features are embedded (linear, L2-norm, 128-d); a patch's teacher and student
    embeddings are the positive pair; the negatives are the batch's other patches and up to the last
    16384 patches' embeddings (a FIFO memory that starts empty, so no negative is a random vector; random
    crops have no lasting identity for CRD's per-instance momentum bank); both directions, softmax
    (InfoNCE) estimator with temperature 0.07 instead of NCE, whose constant needs the dataset size. The
    memories are buffers of the term: saved in the training state, restored on resume, and left as they
    were by SRKDModel's dry run.

    Args:
        feat_dim: the embedding width.
        nce_k: how many earlier patches the memory bank keeps as negatives.
        nce_t: the softmax temperature of the contrastive loss.

    Example::

        - {type: CRDLoss, name: crd, feat_dim: 128, nce_k: 16384, nce_t: 0.07, loss_weight: 0.0176}
    """

    zero_when_features_equal = False  # contrastive: equal features still leave the negatives' term

    def __init__(self, feat_dim: Number = 128, nce_k: Number = 16384, nce_t: Number = 0.07,
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(level_weights, loss_weight)
        self.feat_dim, self.nce_k, self.nce_t = feat_dim, nce_k, nce_t

    def build(self, s_shapes: List[Tuple[int, ...]], t_shapes: List[Tuple[int, ...]]) -> None:
        self.heads = nn.ModuleList(_CRDHead(s[0], t[0], self.feat_dim, self.nce_k) for s, t in zip(s_shapes, t_shapes))

    def level(self, i: int, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        h = self.heads[i]
        zs = F.normalize(h.embed_s(fs.mean(dim=(2, 3))), dim=1)
        zt = F.normalize(h.embed_t(ft.mean(dim=(2, 3))), dim=1)
        loss = (info_nce(zt, zs, h.memory_s.negatives(), self.nce_t) +   # teacher anchor, student negatives
                info_nce(zs, zt, h.memory_t.negatives(), self.nce_t))    # student anchor, teacher negatives
        if self.training:
            h.memory_s.push(zs)
            h.memory_t.push(zt)
        return loss
