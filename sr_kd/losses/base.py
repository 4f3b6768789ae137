"""The contract every distillation term follows, so the model can sum any list of them.

A term receives one ``DistillInputs`` per step: the tapped student/teacher features of each
``distill.pairs`` entry (shallow to deep), both SR outputs, and the batch. Terms that need matching
channels own their connectors (``setup`` builds them from the features' shapes, before training);
their parameters are trained with the student and saved in the checkpoint.
"""
import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

# A numeric option of a term's constructor: sr_kd.schema builds each term's options from these signatures,
# and a number there accepts an int or a float (as an unannotated numeric default does).
Number = Union[int, float]
Levels = Optional[List[float]]  # a term's per-level weights (None: equal)
Shapes = Sequence[Tuple[int, ...]]  # the tapped features' (C, H, W), one per distill.pairs entry


@dataclass
class DistillInputs:
    feats_s: List[torch.Tensor]          # student tap outputs, one per pair (N, Cs, H, W)
    feats_t: List[torch.Tensor]          # teacher tap outputs, same order (N, Ct, H, W), no grad
    sr_s: torch.Tensor                   # student SR output
    sr_t: torch.Tensor                   # teacher SR output, no grad
    lq: torch.Tensor                     # the LR input batch
    gt: Optional[torch.Tensor] = None    # the HR batch
    inputs_s: Optional[List[torch.Tensor]] = None  # tapped modules' inputs, when a term sets needs_inputs
    inputs_t: Optional[List[torch.Tensor]] = None
    student: Optional[nn.Module] = None  # the student network, for terms that run it again (Sobolev, DML)
    teacher: Optional[nn.Module] = None  # the frozen teacher, for terms that run it again (Sobolev)
    teacher_dtype: Optional[torch.dtype] = None  # the precision terms that run the teacher again should use
    maps_t: Optional[dict] = None        # offline teacher: {spec_key(stat, p): [teacher maps (N, H, W) per pair]}
    lr_scale: float = 1.0                # the student's learning rate now / its initial one: a part with an
                                         # optimizer of its own follows the student's schedule


class DistillLoss(nn.Module):
    """Base of every distillation term: ``forward`` returns ``loss_weight * compute(inputs)``.

    A term that trains a part of its own by a loss of its own (DML's peer) returns ``(distill, own)`` from
    ``compute``: only ``distill`` is scaled by ``loss_weight`` and by the fade's factor (``scale``), so how
    hard the student is pushed does not change how that part learns. ``own`` must not reach the student.

    Class attributes a term may set:
      min_batch     the smallest batch the method is defined for (relational losses need 2);
      needs_inputs  the term wants each tapped module's input too (pre-activation features);
      uses_features False for terms on SR outputs only (then ``distill.pairs`` may be empty);
      zero_when_features_equal  False where the loss is not 0 at equal features by design (the zoo's tests);
      offline_maps  None when the term needs the teacher's full features or network (the online teacher),
                    else the (stat, p) statistic maps it reads from the offline teacher cache, which also
                    holds the teacher's SR output (distill/teacher_cache.py).

    Each term's docstring documents its options in ``Args:`` (the option schema is made from them) and ends
    with ``Example::``, one item of ``train.distill_opts`` at the weight docs/zoo.md calibrated where it has
    one (a test validates and builds every example).

    Args:
        loss_weight: multiplies the term in the total loss.
    """

    min_batch = 1
    zero_when_features_equal = True  # the loss is 0 where the student's features equal the teacher's
    warmup_iters = 0  # steps in which the loss weighs 0 while a part of the term's own trains first (MHGD)
    needs_inputs = False
    uses_features = True
    offline_maps = None

    def __init__(self, loss_weight: Number = 1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def setup(self, s_shapes: Shapes, t_shapes: Shapes) -> None:
        """Build connectors from the tapped shapes: lists of (C, H, W) per pair. Called once, before training."""

    def compute(self, d: DistillInputs) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    # A part trained by its own optimizer (HolisticLoss's critic) keeps requires_grad off outside
    # ``own_step``, so the student's optimizer never sees it; the model calls ``own_step`` after each
    # student step and saves ``own_state`` (e.g. that optimizer) in the training state.
    def own_step(self, d: DistillInputs) -> None:
        """Train the term's own part on this step's inputs, after the student's step (nothing by default)."""

    def own_state(self) -> Optional[Dict[str, Any]]:
        """What resume needs beyond the term's state_dict (e.g. its own optimizer), or None."""
        return None

    def load_own_state(self, state: Optional[Dict[str, Any]]) -> None:
        """Restore what ``own_state`` returned."""

    def forward(self, d: DistillInputs, scale: float = 1.0) -> torch.Tensor:
        """``scale``: the fade's factor this step (distill.fade), applied with ``loss_weight``."""
        out = self.compute(d)
        if isinstance(out, tuple):
            distill, own = out
            return distill * (self.loss_weight * scale) + own
        return out * (self.loss_weight * scale)


class OwnOptimizer:
    """For a term whose part has an optimizer of its own (holistic's critic, MHGD's graph head): built once
    by ``build_optimizer``, its rate ``own_lr`` following the student's schedule, saved and restored with
    the run."""

    _optimizer = None

    def build_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = self.build_optimizer()
        return self._optimizer

    def scheduled_optimizer(self, d: DistillInputs) -> torch.optim.Optimizer:
        """The optimizer at ``own_lr`` x this step's ``lr_scale`` (the released holistic code and the MHGD
        seed decay these parts' rates with the student's)."""
        opt = self.optimizer()
        for group in opt.param_groups:
            group['lr'] = self.own_lr * d.lr_scale
        return opt

    @contextlib.contextmanager
    def own_training(self, part: nn.Module, d: DistillInputs) -> Iterator[torch.optim.Optimizer]:
        """The scheduled optimizer, with ``part`` trainable (gradients on) only inside the block, so the
        student's optimizer never sees it and no gradient is left behind."""
        opt = self.scheduled_optimizer(d)
        part.requires_grad_(True)
        try:
            with torch.enable_grad():
                yield opt
        finally:
            opt.zero_grad(set_to_none=True)
            part.requires_grad_(False)

    def own_state(self) -> Dict[str, Any]:
        # a copy: Optimizer.load_state_dict keeps tensors that need no cast, so a shared state would step twice
        return {'optimizer': copy.deepcopy(self.optimizer().state_dict())}

    def load_own_state(self, state: Dict[str, Any]) -> None:
        self.optimizer().load_state_dict(state['optimizer'])


def level_weights(weights: Union[None, Number, Sequence[Number]], n: int) -> List[float]:
    """Per-level weights as a list of n floats (one number or None means equal weights of 1)."""
    if weights is None:
        return [1.0] * n
    if isinstance(weights, (int, float)):
        return [float(weights)] * n
    if len(weights) != n:
        from sr_kd.errors import SRKDError
        raise SRKDError(f'level_weights has {len(weights)} entries but distill.pairs has {n}')
    return [float(w) for w in weights]
