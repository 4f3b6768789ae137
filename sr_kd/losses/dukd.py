"""DUKD: Data Upcycling Knowledge Distillation (Zhang et al., ECCV 2024, arXiv 2309.14162), as distillation terms.

The teacher's SR output on the training LR patch is close to the HR patch, so on that input the GT already
says most of what the teacher knows. DUKD makes new in-domain inputs from each batch that have no GT, on
which the teacher is the only label ("upcycled" data), and regularises the student with paired invertible
augmentations (augment the student's input, undo it on the student's output, compare with the teacher's
label of the plain input). Each part is its own term, with its own weight, logged as its own ``l_<name>``:

  DUKDZoomInLoss        zoom-in: LR-sized tiles of the HR patch as LR inputs; student vs teacher on them.
  DUKDZoomOutLoss       zoom-out: the LR patch downscaled by the scale (MATLAB bicubic); student vs teacher.
  DUKDZoomOutReconLoss  the paper's reconstruction term on zoom-out inputs: their HR is the LR patch itself.
  DUKDConsistencyLoss   label consistency: student on augmented zoom-in (or zoom-out, or LR) inputs, the
                        augmentation undone on its output, vs the teacher on the plain inputs.

The paper computes its zoom-in loss through the augmentations, so its recipe (options/dukd.yml) is output
distillation + DUKDConsistencyLoss (zoom-in tiles, p = 0.3) + the two zoom-out terms; DUKDZoomInLoss is the
zoom-in loss without them (the paper's ablation).

The teacher runs under ``no_grad`` in the mode the model keeps it (eval); only the student gets gradients.
Terms of one step share the upcycled inputs, the teacher's labels and the student's zoom-out output (cached
on that step's ``DistillInputs``), so listing two terms on the same inputs costs no second teacher forward.
Where we had to choose, and the reference code's behaviour, is in docs/dukd.md.
"""
from typing import Any, List, Optional, Sequence, Tuple

import torch

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.distill.teacher import run_teacher
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs, DistillLoss, Number
from sr_kd.losses.output_distill import _CRITERIA
from sr_kd.ops.matlab_resize import resize_matrix
from sr_kd.rules import is_int

# The paper's invertible augmentations, applied to the student's input in this order (colour inversion
# 1 - x, flip of the rows, flip of the columns, transpose) and undone on its output in the reverse order.
OPS = ('invert', 'flip_h', 'flip_w', 'transpose')
SOURCES = ('zoom_in', 'zoom_out', 'lr')


# ----- upcycled inputs -------------------------------------------------------------------------------------
def zoom_in_inputs(gt: torch.Tensor, lr_shape: Tuple[int, int], n_crops: int = 1) -> torch.Tensor:
    """``n_crops`` distinct LR-sized tiles per HR patch, drawn uniformly from the grid of LR-sized tiles that
    cover it (a scale x scale grid when HR = scale x LR); (N * n_crops, C, h, w), each image's tiles together."""
    n, c, gh, gw = gt.shape
    h, w = lr_shape
    rows, cols = gh // h, gw // w
    if n_crops < 1 or n_crops > rows * cols:
        raise SRKDError(f'zoom-in: n_crops must be 1..{rows * cols} ({rows}x{cols} tiles of {h}x{w} in a '
                        f'{gh}x{gw} HR patch), got {n_crops}')
    tiles = (gt[:, :, :rows * h, :cols * w].reshape(n, c, rows, h, cols, w)
             .permute(0, 2, 4, 1, 3, 5).reshape(n, rows * cols, c, h, w))
    pick = torch.rand(n, rows * cols, device=gt.device).argsort(dim=1)[:, :n_crops]
    return tiles[torch.arange(n, device=gt.device)[:, None], pick].reshape(n * n_crops, c, h, w)


def zoom_out_inputs(lq: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR batch downscaled by ``scale`` with MATLAB's bicubic (antialiased, symmetric edges): the float
    path of sr_kd/ops/matlab_resize.imresize (float64, height then width, no rounding), batched on the
    tensor's device. No gradient is needed through it (the LR patch is data)."""
    h, w = lq.shape[-2:]
    oh, ow = -(-h // scale), -(-w // scale)
    mh = torch.tensor(resize_matrix(h, oh, 1.0 / scale), device=lq.device)
    mw = torch.tensor(resize_matrix(w, ow, 1.0 / scale), device=lq.device)
    x = torch.einsum('oh,nchw->ncow', mh, lq.detach().double())
    return torch.einsum('pw,ncow->ncop', mw, x).to(lq.dtype)


# ----- paired invertible augmentations ---------------------------------------------------------------------
def draw_augmentations(n: int, prob: float, ops: Sequence[str] = OPS,
                       device: Optional[torch.device] = None) -> torch.Tensor:
    """(n, 4) bool: per sample, each op of ``ops`` on with probability ``prob``, independently (the reference
    code's draw, so a sample may get none, one or several); columns in the order of ``OPS``."""
    on = torch.rand(n, len(OPS), device=device) < prob
    return on & torch.tensor([op in ops for op in OPS], device=device)


def _where(mask, a, b):
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def augment(x: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """Apply each sample's drawn ops to ``x`` (N, C, H, W): invert, flip_h, flip_w, transpose, in that order."""
    x = _where(draw[:, 0], 1 - x, x)
    x = _where(draw[:, 1], x.flip(-2), x)
    x = _where(draw[:, 2], x.flip(-1), x)
    return _transpose(x, draw[:, 3])


def invert_augment(y: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """Undo ``augment`` on ``y`` (an input or its SR output): the same ops in the reverse order. (Each op is
    its own inverse, but transpose does not commute with a flip, so the order matters.)"""
    y = _transpose(y, draw[:, 3])
    y = _where(draw[:, 2], y.flip(-1), y)
    y = _where(draw[:, 1], y.flip(-2), y)
    return _where(draw[:, 0], 1 - y, y)


def _transpose(x, mask):
    if not bool(mask.any()):
        return x
    if bool(mask.all()):
        return x.transpose(-2, -1)
    if x.shape[-2] != x.shape[-1]:
        raise SRKDError(f'DUKD transpose: samples of one batch are transposed or not, which needs square '
                        f'inputs, not {x.shape[-2]}x{x.shape[-1]}; drop transpose from ops')
    return _where(mask, x.transpose(-2, -1), x)


# ----- one step's shared state -----------------------------------------------------------------------------
def _step_cache(d):
    """A dict that lives as long as this step's DistillInputs: the terms of one step share through it."""
    return d.__dict__.setdefault('_dukd', {})


def _scale(d):
    return d.sr_s.shape[-1] // d.lq.shape[-1]


def _source(d, source, n_crops):
    """The plain (not augmented) inputs of ``source`` for this step, drawn once per step and shared."""
    cache = _step_cache(d)
    key = ('input', source, n_crops if source == 'zoom_in' else None)
    if key not in cache:
        if source == 'lr':
            cache[key] = d.lq.detach()
        elif source == 'zoom_out':
            cache[key] = zoom_out_inputs(d.lq, _scale(d))
        else:
            # The model's start-up probe batch has no HR patch: there the tiles come from the LR batch
            # upscaled by nearest neighbour, which runs the same shapes. Training batches always carry gt.
            gt = d.gt if d.gt is not None else torch.nn.functional.interpolate(d.lq, scale_factor=_scale(d))
            cache[key] = zoom_in_inputs(gt.detach(), tuple(d.lq.shape[-2:]), n_crops)
    return key, cache[key]


def _teacher_label(d, source, n_crops):
    """The teacher's SR output on the plain ``source`` inputs, computed once per step: under ``no_grad``, at
    the precision the model runs its teacher at (``teacher_dtype``: bf16 autocast, or None for fp32)."""
    key, x = _source(d, source, n_crops)
    cache = _step_cache(d)
    if ('teacher',) + key not in cache:
        if source == 'lr':
            cache[('teacher',) + key] = d.sr_t.detach().float()
        else:
            cache[('teacher',) + key] = run_teacher(d.teacher, x, d.teacher_dtype)
    return cache[('teacher',) + key]


class _DUKDTerm(DistillLoss):
    """Shared by the DUKD terms: SR outputs only, criterion l1 (the paper's) | mse | charbonnier.

    Args:
        criterion: the distance between the student's and the teacher's outputs: l1 or mse.
    """

    uses_features = False
    needs_teacher = True

    def __init__(self, criterion='l1', loss_weight=1.0):
        super().__init__(loss_weight)
        if criterion not in _CRITERIA:
            raise SRKDError(f'{type(self).__name__}: criterion must be one of {", ".join(_CRITERIA)}, '
                            f'not {criterion!r}')
        self.fn = _CRITERIA[criterion]

    def _check(self, d):
        if d.student is None or (self.needs_teacher and d.teacher is None):
            raise SRKDError(f'{type(self).__name__} runs the student and teacher again: it needs the online '
                            'teacher (distill.teacher: online) and both networks in DistillInputs')


def _n_crops(n_crops):
    if not is_int(n_crops) or n_crops < 1:
        raise SRKDError(f'DUKD: n_crops must be a whole number >= 1, got {n_crops!r}')
    return n_crops


@LOSS_REGISTRY.register()
class DUKDZoomInLoss(_DUKDTerm):
    """Upcycled zoom-in: ``n_crops`` LR-sized tiles of each HR patch (a scale x scale grid of them; one drawn
    per image by default, as the paper) are fed to both networks as LR inputs; the student's SR output follows
    the teacher's (there is no GT at scale x the HR patch).

    Args:
        n_crops: LR-sized tiles taken from each HR patch.

    Example::

        - {type: DUKDZoomInLoss, name: zoom_in, n_crops: 1, loss_weight: 0.2}
    """

    def __init__(self, n_crops: Number = 1, criterion: str = 'l1', loss_weight: Number = 1.0):
        super().__init__(criterion, loss_weight)
        self.n_crops = _n_crops(n_crops)

    def compute(self, d: DistillInputs) -> torch.Tensor:
        self._check(d)
        target = _teacher_label(d, 'zoom_in', self.n_crops)
        _, x = _source(d, 'zoom_in', self.n_crops)
        return self.fn(d.student(x).float(), target)


def _student_zoom_out(d):
    """The student's SR output on this step's zoom-out inputs, shared by the zoom-out terms (one forward)."""
    cache = _step_cache(d)
    if 'student_zoom_out' not in cache:
        _, x = _source(d, 'zoom_out', None)
        cache['student_zoom_out'] = d.student(x).float()
    return cache['student_zoom_out']


@LOSS_REGISTRY.register()
class DUKDZoomOutLoss(_DUKDTerm):
    """Upcycled zoom-out: the LR patch downscaled by the scale (MATLAB bicubic) is fed to both networks; the
    student's SR output (LR-patch sized) follows the teacher's.

    Example::

        - {type: DUKDZoomOutLoss, name: zoom_out, loss_weight: 0.2}
    """

    def compute(self, d: DistillInputs) -> torch.Tensor:
        self._check(d)
        target = _teacher_label(d, 'zoom_out', None)
        return self.fn(_student_zoom_out(d), target)


@LOSS_REGISTRY.register()
class DUKDZoomOutReconLoss(_DUKDTerm):
    """The paper's reconstruction loss on zoom-out inputs: their ground truth is the LR patch itself (the
    reference code weights it as the pixel loss, 5x the distillation terms). Shares the student's forward
    with DUKDZoomOutLoss; needs no teacher.

    Example::

        - {type: DUKDZoomOutReconLoss, name: zoom_out_recon, loss_weight: 1.0}
    """

    needs_teacher = False
    offline_maps = ()  # reads no teacher output at all

    def compute(self, d: DistillInputs) -> torch.Tensor:
        self._check(d)
        return self.fn(_student_zoom_out(d), d.lq.detach().float())


@LOSS_REGISTRY.register()
class DUKDConsistencyLoss(_DUKDTerm):
    """Label consistency through paired invertible augmentations: each ``source`` input (zoom_in tiles by
    default, as the paper; zoom_out or the LR batch) gets each op of ``ops`` with probability ``prob`` (0.3,
    the paper's); the student sees the augmented input, its output is un-augmented (the paired inverse) and
    follows the teacher's label of the plain input. The teacher never sees an augmented input. With the
    defaults this term alone is the reference code's zoom-in loss with its augmentations on.

    Args:
        source: the inputs that are augmented: zoom_in, zoom_out or lr.
        ops: the invertible augmentations drawn from.
        prob: the chance of each op.
        n_crops: zoom-in tiles per HR patch.

    Example::

        - {type: DUKDConsistencyLoss, name: consistency, source: zoom_in, prob: 0.3, loss_weight: 0.2}
    """

    # ops: List[Any] as sr_kd.schema reads it (a list of any items, as the tuple default made it): the
    # constructor checks the items, and takes a tuple or one name too
    def __init__(self, source: str = 'zoom_in', ops: List[Any] = OPS, prob: Number = 0.3, n_crops: Number = 1,
                 criterion: str = 'l1', loss_weight: Number = 1.0):
        super().__init__(criterion, loss_weight)
        if source not in SOURCES:
            raise SRKDError(f'DUKDConsistencyLoss: source must be one of {", ".join(SOURCES)}, not {source!r}')
        ops = [ops] if isinstance(ops, str) else list(ops or [])
        bad = [op for op in ops if op not in OPS]
        if bad or not ops:
            raise SRKDError(f'DUKDConsistencyLoss: ops must be a non-empty list of {", ".join(OPS)}, got {ops!r}')
        if not 0 < float(prob) <= 1:
            raise SRKDError(f'DUKDConsistencyLoss: prob must be in (0, 1], got {prob!r}')
        self.source, self.ops, self.prob, self.n_crops = source, tuple(ops), float(prob), _n_crops(n_crops)
        if source == 'lr':  # the teacher's label is its output on the batch: no second teacher forward
            self.needs_teacher, self.offline_maps = False, ()

    def compute(self, d: DistillInputs) -> torch.Tensor:
        self._check(d)
        target = _teacher_label(d, self.source, self.n_crops)
        _, x = _source(d, self.source, self.n_crops)
        draw = draw_augmentations(x.shape[0], self.prob, self.ops, x.device)
        return self.fn(invert_augment(d.student(augment(x, draw)).float(), draw), target)
