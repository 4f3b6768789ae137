"""Small student/teacher pairs and inputs for the distillation-zoo tests (N=4, C=8/16, 8x8 features)."""
import torch
import torch.nn.functional as F
from torch import nn

from basicsr.losses import build_loss
from sr_kd.distill.taps import FeatureTaps
from sr_kd.losses.base import DistillInputs
from sr_kd.schema import distill_losses, term_example

# where a term's docstring example is too large for 8x8 features and batches of 4
SMALLER = {'CRDLoss': {'nce_k': 64},
           'MHGDLoss': {'head_iters': 0}}  # past its head's stage: the graph KL is on (its stages: test_zoo_spatial_decomposition.py)


def _feature_terms():
    """{loss: options} of every registered term on tapped features (``uses_features``), from the registry: its
    docstring example's options (weight 1), made smaller where SMALLER says. A new term is tested here as it is."""
    terms = {}
    for name, cls in distill_losses().items():
        if cls.uses_features:
            example = term_example(cls)
            opts = {k: v for k, v in (example[1] if example else {}).items() if k not in ('type', 'name', 'loss_weight')}
            terms[name] = {**opts, **SMALLER.get(name, {})}
    return terms


FEATURE_TERMS = _feature_terms()
NEEDS_BATCH_2 = {name for name, cls in distill_losses().items() if cls.min_batch >= 2}


class TinySR(nn.Module):
    """Three tapped conv levels (pre-activation outputs, like IMDB blocks) and an x2 output."""

    def __init__(self, c):
        super().__init__()
        self.levels = nn.ModuleList([nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1),
                                     nn.Conv2d(c, c, 3, padding=1)])
        self.out = nn.Sequential(nn.Conv2d(c, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):
        h = x
        for conv in self.levels:
            h = F.leaky_relu(conv(h), 0.05)
        return self.out(h)


def make_nets(cs=8, ct=16, seed=0):
    torch.manual_seed(seed)
    student, teacher = TinySR(cs), TinySR(ct)
    teacher.eval()
    for p in teacher.parameters():  # a frozen teacher, as SRKDModel makes it
        p.requires_grad_(False)
    return student, teacher


def forward_pair(student, teacher, lq, gt=None):
    """DistillInputs as SRKDModel's step builds them, through its FeatureTaps on the three levels: student with
    grad, teacher under no_grad."""
    names = [f'levels.{i}' for i in range(3)]
    taps_s, taps_t = FeatureTaps(student, names), FeatureTaps(teacher, names, role='teacher')
    try:
        sr_s = student(lq)
        with torch.no_grad():
            sr_t = teacher(lq)
        return DistillInputs(feats_s=list(taps_s.outputs), feats_t=list(taps_t.outputs), sr_s=sr_s, sr_t=sr_t,
                             lq=lq, gt=gt, student=student)
    finally:
        taps_s.remove()
        taps_t.remove()


def build(name, s_shapes, t_shapes, **opts):
    loss = build_loss({'type': name, **FEATURE_TERMS.get(name, {}), **opts})
    loss.setup(s_shapes, t_shapes)
    return loss


def leaf_inputs(feats_s, feats_t, sr_s=None, sr_t=None):
    """DistillInputs over leaf tensors (student ones require grad)."""
    feats_s = [f.clone().requires_grad_(True) for f in feats_s]
    n = feats_s[0].shape[0]
    sr_s = torch.zeros(n, 3, 16, 16, requires_grad=True) if sr_s is None else sr_s
    sr_t = torch.zeros(n, 3, 16, 16) if sr_t is None else sr_t
    return DistillInputs(feats_s=feats_s, feats_t=list(feats_t), sr_s=sr_s, sr_t=sr_t, lq=torch.zeros(n, 3, 8, 8))


def shapes(feats):
    return [tuple(f.shape[1:]) for f in feats]


def random_feats(seed, s_shape, t_shape, levels=2):
    """Student and teacher feature lists of ``levels`` random N x C x H x W tensors each."""
    torch.manual_seed(seed)
    return [torch.randn(*s_shape) for _ in range(levels)], [torch.randn(*t_shape) for _ in range(levels)]
