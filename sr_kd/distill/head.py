"""The list of distillation terms an option file asks for, as one module.

One module so that the terms' connectors are trained by the same optimizer as the student, wrapped in
DistributedDataParallel with it, saved with the checkpoint and restored on resume.
"""
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from basicsr.losses import build_loss

from sr_kd.errors import SRKDError
from sr_kd.rules import check_registered

if TYPE_CHECKING:
    from sr_kd.losses.base import DistillInputs, DistillLoss


def build_terms(term_opts: Optional[Iterable[Dict[str, Any]]]) -> Tuple[List[str], List['DistillLoss']]:
    """(names, terms) from ``train.distill_opts``; each name is logged as ``l_<name>``."""
    names, terms = [], []
    from basicsr.utils.registry import LOSS_REGISTRY
    for i, opt in enumerate(term_opts or []):
        opt = dict(opt)
        check_registered(LOSS_REGISTRY, opt.get('type'), f'distillation loss type (distill_opts[{i}])')
        name = str(opt.pop('name', opt['type'].replace('Loss', '').lower()))
        opt.pop('fade', None)  # the term's weight schedule: the model's (sr_kd.rules.term_fades)
        if name in names or name in ('pix', 'percep', 'style', 'total'):
            raise SRKDError(f'distill_opts[{i}]: the name {name!r} is already used; give each term its own name')
        try:
            term = build_loss(opt)
        except TypeError as e:
            raise SRKDError(f'distill_opts[{i}] ({opt["type"]}): {e}') from e
        names.append(name)
        terms.append(term)
    return names, terms


class DistillTerms(nn.Module):
    """Holds the terms; ``forward(inputs)`` returns their weighted losses in order."""

    def __init__(self, names: Iterable[str], terms: Iterable['DistillLoss']):
        super().__init__()
        self.names = list(names)
        self.terms = nn.ModuleList(terms)

    @property
    def needs_inputs(self) -> bool:
        return any(t.needs_inputs for t in self.terms)

    @property
    def uses_features(self) -> bool:
        return any(t.uses_features for t in self.terms)

    def has_parameters(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def setup(self, s_shapes: Sequence[Tuple[int, ...]], t_shapes: Sequence[Tuple[int, ...]], batch_size: int) -> None:
        for name, term in zip(self.names, self.terms):
            if batch_size < term.min_batch:
                raise SRKDError(f'l_{name} ({type(term).__name__}) compares samples within a batch and needs '
                                f'batch_size_per_gpu >= {term.min_batch}, got {batch_size}')
            if term.uses_features and not s_shapes:
                raise SRKDError(f'l_{name} ({type(term).__name__}) distills features: list them in distill.pairs')
            term.setup(s_shapes, t_shapes)

    def forward(self, inputs: 'DistillInputs', active: Optional[List[bool]] = None,
                scales: Optional[List[float]] = None) -> List[Optional[torch.Tensor]]:
        """Each term's loss at its fade's factor (``scales``, one per term); None for a term that ``active``
        (one bool per term) switches off (faded to weight 0), which is then not computed at all: a zero
        weight must cost nothing."""
        active = active or [True] * len(self.terms)
        scales = scales or [1.0] * len(self.terms)
        return [term(inputs, s) if on else None for term, on, s in zip(self.terms, active, scales)]

    def reads_maps(self, active: Optional[List[bool]] = None) -> bool:
        """Whether an active term compares the teacher's stored statistic maps (offline teacher)."""
        active = active or [True] * len(self.terms)
        return any(on and getattr(term, 'offline_maps', None) for term, on in zip(self.terms, active))

    # terms with a part of their own (a critic and its optimizer): see DistillLoss.own_step
    def own_step(self, inputs: 'DistillInputs', active: Optional[List[bool]] = None) -> None:
        active = active or [True] * len(self.terms)
        for term, on in zip(self.terms, active):
            if on:
                term.own_step(inputs)

    def own_state(self) -> Dict[str, Any]:
        states = {name: term.own_state() for name, term in zip(self.names, self.terms)}
        return {name: state for name, state in states.items() if state is not None}

    def load_own_state(self, states: Dict[str, Any]) -> None:
        for name, term in zip(self.names, self.terms):
            if name in states:
                term.load_own_state(states[name])
