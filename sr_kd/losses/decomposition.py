"""Decomposition and graph distillation (Lee & Song's line of work): each tapped feature is compressed
by SVD into a few right singular vectors (directions in channel space), and knowledge is the relation
between consecutive levels' vectors: an RBF graph (KD-SVD) or a multi-head attention graph (MHGD).

Singular vectors of ``x`` (N, HW, C) come from the eigen-decomposition of ``x^T x`` in float64 (as the
seeds' ``SVD_eid``). Its gradient has 1/(lambda_i - lambda_j) terms, infinite on flat patches (all
eigenvalues 0); ``_SymEig`` drops the terms of (nearly) equal eigenvalues, which the seeds do by
zeroing non-finite gradients. Student widths go to the teacher's through connectors where they differ.

EKI (the seeds' third method) is not here: the seed omits its building blocks (Plane_mapping,
PCA_Graph, MPNN, Attention_knowledge), so writing it would be guesswork.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses._zoo import ZooLoss, check_connector, make_connector
from sr_kd.losses.base import DistillInputs, Levels, Number, OwnOptimizer


class _SymEig(torch.autograd.Function):
    """eigh of symmetric matrices (ascending) whose backward skips pairs of (nearly) equal eigenvalues."""

    @staticmethod
    def forward(ctx, a):
        lam, vec = torch.linalg.eigh(a)
        ctx.save_for_backward(lam, vec)
        return lam, vec

    @staticmethod
    def backward(ctx, g_lam, g_vec):
        lam, vec = ctx.saved_tensors
        diff = lam.unsqueeze(-2) - lam.unsqueeze(-1)  # [i, j] = lambda_j - lambda_i
        tol = 1e-6 * lam.abs().amax(dim=-1, keepdim=True).unsqueeze(-1) + 1e-30
        ok = diff.abs() > tol
        inv = torch.where(ok, 1 / torch.where(ok, diff, torch.ones_like(diff)), torch.zeros_like(diff))
        inner = inv * (vec.mT @ g_vec) + torch.diag_embed(g_lam)
        g = vec @ inner @ vec.mT
        return (g + g.mT) / 2


def right_singular(x: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-k singular values (N, k) and right singular vectors (N, C, k) of x (N, C, H, W) seen as (HW x C).

    The values carry no gradient: only the teacher's are used, as weights."""
    m = x.flatten(2).double()  # (N, C, HW)
    lam, vec = _SymEig.apply(m @ m.mT)
    k = min(k, vec.shape[-1])
    lam, vec = lam.flip(-1)[:, :k], vec.flip(-1)[..., :k]
    return lam.detach().clamp_min(0).sqrt().float(), vec.float()


def fix_sign(v: torch.Tensor) -> torch.Tensor:
    """Make each vector's largest-magnitude entry positive, so the target does not depend on the solver."""
    top = v.gather(1, v.abs().argmax(dim=1, keepdim=True))
    return v * torch.where(top < 0, -1.0, 1.0)


def align(v_s: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """For each teacher vector, the student vector of largest |cosine|, with the teacher's sign (Align_rsv)."""
    cos = v_s.mT @ v_t  # (N, Ks, Kt)
    idx = cos.abs().argmax(dim=1, keepdim=True)  # (N, 1, Kt)
    chosen = v_s.gather(2, idx.expand(-1, v_s.shape[1], -1))
    return chosen * torch.where(cos.gather(1, idx) < 0, -1.0, 1.0)


class _DecompositionLoss(ZooLoss):
    """Cross-level terms on singular vectors: connectors to the teacher's widths, two pairs or more."""

    def __init__(self, connector, level_weights: Levels = None, loss_weight=1.0):
        super().__init__(level_weights, loss_weight)
        self.connector_kind = check_connector(connector, self.owner)

    def build(self, s_shapes, t_shapes):
        if len(s_shapes) < 2:
            raise SRKDError(f'{self.owner} needs at least two distill.pairs (it relates consecutive levels)')
        self.connectors = nn.ModuleList(
            make_connector(self.connector_kind, s[0], t[0], self.owner) for s, t in zip(s_shapes, t_shapes))


@LOSS_REGISTRY.register()
class KDSVDLoss(_DecompositionLoss):
    """KD-SVD (Lee, Kim & Song, ECCV 2018): truncated SVD (K=4) of each level; student vectors aligned to
    the teacher's (best |cosine|, sign); both scaled by the teacher's normalised singular values; RBF
    exp(-(v_l - v_{l-1})^2 / 8) between channels of consecutive levels, per component; squared
    difference summed per patch and averaged over the batch.

    Args:
        k: how many singular vectors are kept.

    Example::

        - {type: KDSVDLoss, name: kd_svd, k: 4, loss_weight: 1.23}
    """

    def __init__(self, k: Number = 4, connector: str = 'auto', level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(connector, level_weights, loss_weight)
        self.k = int(k)

    @staticmethod
    def rbf(v: torch.Tensor, v_prev: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(v.unsqueeze(2) - v_prev.unsqueeze(1)).pow(2) / 8)

    def vectors(self, fs: torch.Tensor, ft: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s_t, v_t = right_singular(ft, self.k)
        v_t = fix_sign(v_t)
        v_s = align(right_singular(fs, self.k)[1], v_t)
        scale = F.normalize(s_t, dim=1).unsqueeze(1)
        return v_s * scale, v_t * scale

    def distill(self, fs: List[torch.Tensor], ft: List[torch.Tensor], d: DistillInputs) -> torch.Tensor:
        vs = [self.vectors(c(s), t) for c, s, t in zip(self.connectors, fs, ft)]
        n = fs[0].shape[0]
        return sum(self.weights[i] * (self.rbf(vs[i][0], vs[i - 1][0]) - self.rbf(vs[i][1], vs[i - 1][1])).pow(2).sum() / n
                   for i in range(1, len(vs)))


def _bn_linear(d_in, d_out):
    return nn.Sequential(nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out))


def _frozen(block, x):
    """Apply a Linear+BN block with detached weights and running statistics (the distillation pass)."""
    lin, bn = block
    x = F.linear(x, lin.weight.detach())
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight.detach(), bn.bias.detach(), False, 0.0, bn.eps)


def drop_heads(g: torch.Tensor) -> torch.Tensor:
    """The seed's drop-head on row-normalised graphs (heads, N, N): per patch, each head's row is kept
    where a normal draw exceeds that patch's mean draw over the heads, so about half the heads survive
    (always at least one), and the estimator cannot lean on one head."""
    noise = torch.randn(g.shape[0], g.shape[1], 1, device=g.device, dtype=g.dtype)
    return g * (noise - noise.mean(dim=0, keepdim=True) > 0).to(g.dtype)


class _GraphHead(nn.Module):
    """MHGD's multi-head attention from level l's vectors (keys) to level l-1's (queries), and the
    estimator that rebuilds level l from level l-1 through the graph (its loss trains the head).

    As the seed: the graph is the raw product of the heads' keys and queries (logits, no scaling and
    no softmax); softmax is applied only where a distribution is needed, in the estimator (then the
    drop-head) and in the KL. The estimator is Linear+BN+ReLU to (d_prev + d) / 2 per patch, the graph
    mixes patches per head, the heads side by side go through a Linear with bias to d, L2-normalised.
    TensorFlow's ``fully_connected`` also applies a ReLU by default, which the seed leaves implicit; it is
    not reproduced: after the estimator's last layer it would forbid the negative entries of the unit
    vector it must rebuild."""

    def __init__(self, d_prev, d, heads):
        super().__init__()
        self.heads, self.d, self.d2, self.d_est = heads, d, (d + d_prev) // 2, (d + d_prev) // 2
        self.key, self.query = _bn_linear(d, self.d2 * heads), _bn_linear(d_prev, self.d2 * heads)
        self.est_in = _bn_linear(d_prev, self.d_est)
        self.est_out = nn.Linear(self.d_est * heads, d)

    def split(self, x, dim):
        return x.view(len(x), self.heads, dim).transpose(0, 1)  # (heads, N, dim)

    def graph(self, v, v_prev, frozen=False):
        """Attention logits (heads, N, N): row i holds patch i's key against every patch's query."""
        run = _frozen if frozen else (lambda block, x: block(x))
        k, q = self.split(run(self.key, v), self.d2), self.split(run(self.query, v_prev), self.d2)
        return k @ q.mT

    def estimate(self, g, v_prev):
        """Level l rebuilt from level l-1 through the graph logits ``g``, one unit vector per patch."""
        x = F.relu(self.est_in(v_prev))  # (N, d_est)
        mixed = drop_heads(torch.softmax(g, dim=-1)) @ x  # (heads, N, d_est)
        return F.normalize(self.est_out(mixed.transpose(0, 1).reshape(len(v_prev), -1)), dim=1)

    def estimation_loss(self, v, v_prev):
        est = self.estimate(self.graph(v, v_prev), v_prev)
        return (1 - (est * v).sum(dim=1)).mean()


def graph_kl(g_s: torch.Tensor, g_t: torch.Tensor) -> torch.Tensor:
    """KL(softmax(G_S) || softmax(G_T)) per row, summed over heads and averaged over patches (seed order)."""
    return (F.softmax(g_s, -1) * (F.log_softmax(g_s, -1) - F.log_softmax(g_t, -1))).sum() / g_s.shape[1]


@LOSS_REGISTRY.register()
class MHGDLoss(OwnOptimizer, _DecompositionLoss):
    """Multi-head graph distillation (Lee & Song, BMVC 2019): each level is compressed to its first
    right singular vector; an 8-head attention network gives a patch-by-patch graph between consecutive
    levels, and the student's graph logits follow the teacher's by
    KL(softmax(tanh(G_S - mean_T)) || softmax(tanh(G_T - mean_T))) per row, the mean taken over the
    teacher's row. The KL is averaged over patches where the seed sums it (so the weight does not
    depend on the batch size); ``loss_weight`` scales it. Needs batches of 2 or more.

    Two stages, as the seed's training script: for the first ``head_iters`` steps the head is trained on
    the teacher only, by its own optimizer (Adam at ``head_lr``; the seed's momentum SGD at the student's
    rate) on its own loss (estimate level l from level l-1 through the graph, cosine, plus the seed's
    5e-4 x the squared weights), and the KL is off; from then on the head is frozen, weights and batch-norm
    statistics, and the KL is on. Adapted: the student learns the task during the head's stage (the
    seed leaves it idle for 40 of 140 epochs). The head is kept out of the student's optimizer; its step
    count and optimizer are saved with the run; under DDP every rank takes rank 0's head.

    Args:
        num_head: attention heads of the graph network.
        head_iters: iterations the graph head trains before the student follows it.
        head_lr: the graph head's learning rate.

    Example::

        - {type: MHGDLoss, name: mhgd, num_head: 8, head_iters: 100, loss_weight: 0.00733}
    """

    min_batch = 2

    def __init__(self, num_head: Number = 8, head_iters: Number = 100, head_lr: Number = 5e-4, connector: str = 'auto',
                 level_weights: Levels = None, loss_weight: Number = 1.0):
        super().__init__(connector, level_weights, loss_weight)
        self.num_head, self.head_iters, self.own_lr = int(num_head), int(head_iters), float(head_lr)
        if self.num_head < 1 or self.head_iters < 0 or self.own_lr <= 0:
            raise SRKDError(f'MHGDLoss: num_head must be positive, head_iters not negative and head_lr positive, '
                            f'got {num_head}, {head_iters}, {head_lr}')
        self.register_buffer('head_steps', torch.zeros((), dtype=torch.long))  # saved: resume knows the stage
        self._teacher_vectors = None  # this step's, for own_step
        self.head_loss = None  # the head's last loss (logged by nothing; for inspection and tests)

    def build(self, s_shapes: List[Tuple[int, ...]], t_shapes: List[Tuple[int, ...]]) -> None:
        super().build(s_shapes, t_shapes)
        self.graphs = nn.ModuleList(_GraphHead(t_shapes[i - 1][0], t_shapes[i][0], self.num_head)
                                    for i in range(1, len(t_shapes))).requires_grad_(False)

    @property
    def head_trained(self) -> bool:
        return int(self.head_steps) >= self.head_iters

    @property
    def warmup_iters(self) -> int:
        return self.head_iters

    def build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(self.graphs.parameters()), lr=self.own_lr)

    @staticmethod
    def first_vector(fs: torch.Tensor, ft: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        v_t = fix_sign(right_singular(ft, 1)[1])[..., 0]
        v_s = right_singular(fs, 1)[1][..., 0]
        return v_s * torch.where((v_s * v_t).sum(dim=1, keepdim=True) < 0, -1.0, 1.0), v_t

    def distill(self, fs: List[torch.Tensor], ft: List[torch.Tensor], d: DistillInputs) -> torch.Tensor:
        vs = [self.first_vector(c(s), t) for c, s, t in zip(self.connectors, fs, ft)]
        self._teacher_vectors = [v_t.detach() for _, v_t in vs]
        kl = 0
        for i in range(1, len(vs)):
            head, (v_s, v_t), (vb_s, vb_t) = self.graphs[i - 1], vs[i], vs[i - 1]
            g_t, g_s = head.graph(v_t, vb_t, frozen=True), head.graph(v_s, vb_s, frozen=True)
            mean = g_t.mean(dim=-1, keepdim=True)
            kl = kl + self.weights[i] * graph_kl(torch.tanh(g_s - mean), torch.tanh(g_t - mean))
        # during the head's stage the KL is computed but weighs 0: every connector then still gets a
        # gradient, as DistributedDataParallel requires of a module it runs
        return kl if self.head_trained else kl * 0.0

    def own_step(self, d: DistillInputs) -> None:
        """During the head's stage: one step of the head on this step's teacher vectors."""
        vt, self._teacher_vectors = self._teacher_vectors, None
        if self.head_trained or vt is None:
            return
        with self.own_training(self.graphs, d) as opt:
            opt.zero_grad(set_to_none=True)
            loss = sum(self.graphs[i - 1].estimation_loss(vt[i], vt[i - 1]) for i in range(1, len(vt)))
            loss = loss + 5e-4 * sum(p.pow(2).sum() for p in self.graphs.parameters())
            loss.backward()
            opt.step()
            self.head_loss = float(loss.detach())
        self.head_steps += 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # one head for every rank (DDP syncs only what the student's optimizer trains): rank 0's
            with torch.no_grad():
                for t in list(self.graphs.parameters()) + list(self.graphs.buffers()):
                    torch.distributed.broadcast(t, 0)
