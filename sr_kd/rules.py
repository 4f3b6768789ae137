"""Option rules with one owner each: the start-up check (``sr_kd.options``) and the model
(``sr_kd.models.srkd_model``) both call these, so a rule is written once and both say the same line.

Teacher rules (network_t, its checkpoint, its scale) are owned by ``sr_kd.distill.teacher``; the loss
term rules (registered type, unique names) by ``sr_kd.distill.head.build_terms``.
"""
import math
from typing import TYPE_CHECKING, List, Optional, Tuple

from sr_kd.errors import SRKDError, close_matches

if TYPE_CHECKING:
    from basicsr.utils.registry import Registry

NONFINITE_MODES = ('stop', 'skip')
# nonfinite: skip stops the run once more than this share of the steps so far was skipped (the first
# FREE_SKIPS skips are always allowed, so one bad batch early on does not stop a run).
DEFAULT_MAX_SKIP_SHARE = 0.1
FREE_SKIPS = 3


def is_int(v: object) -> bool:
    """A whole number, and not YAML's true/false (bool is an int subclass in Python)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> bool:
    """An int or a float, and not YAML's true/false."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def train_has_gt(opt: dict) -> bool:
    """Whether the train dataset yields ground truth: a dataset class says so by ``has_gt = False``
    (``PlainImageDataset``: the teacher's output is the only target); BasicSR's datasets all have it."""
    from basicsr.utils.registry import DATASET_REGISTRY
    kind = ((opt.get('datasets') or {}).get('train') or {}).get('type')
    return getattr(DATASET_REGISTRY.get(kind), 'has_gt', True) if kind in DATASET_REGISTRY else True


def check_registered(registry: 'Registry', name: object, what: str) -> None:
    """SRKDError naming close matches unless ``name`` is registered in ``registry``."""
    if not isinstance(name, str) or name not in registry:
        raise SRKDError(f'unknown {what} {name!r}{close_matches(name, registry.keys())}')


def nonfinite_policy(train_opt: dict) -> Tuple[str, float]:
    """(mode, max_skip_share) from ``train.nonfinite`` ('stop' | 'skip') and ``train.nonfinite_max_share``."""
    mode = train_opt.get('nonfinite', 'stop')
    if mode not in NONFINITE_MODES:
        raise SRKDError(f"train.nonfinite must be one of {', '.join(map(repr, NONFINITE_MODES))}, not {mode!r}")
    share = train_opt.get('nonfinite_max_share', DEFAULT_MAX_SKIP_SHARE)
    if not is_number(share) or not 0 <= share <= 1:
        raise SRKDError(f'train.nonfinite_max_share must be a number in [0, 1], not {share!r}')
    return mode, float(share)


def check_skip_share(skipped: int, current_iter: int, max_share: float) -> None:
    """SRKDError once the skipped steps pass ``max_share`` of the steps so far (beyond FREE_SKIPS)."""
    if skipped > max(FREE_SKIPS, math.floor(max_share * current_iter)):
        raise SRKDError(f'{skipped} of {current_iter} steps had a NaN/inf loss and were skipped, more than '
                        f'train.nonfinite_max_share = {max_share:g}: stopped, the weights are not trained. '
                        "Lower the learning rate or that term's weight")


def distill_pairs(opt: dict) -> Tuple[List[str], List[str]]:
    """(student module names, teacher module names) from ``distill.pairs``."""
    pairs = (opt.get('distill') or {}).get('pairs') or []
    if pairs == 'auto':  # chosen once both networks exist (sr_kd.distill.auto_pairs.resolve)
        return [], []
    if not isinstance(pairs, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(n, str) for n in p) for p in pairs):
        raise SRKDError(f'distill.pairs must be a list of [student_module, teacher_module], not {pairs!r}')
    return [p[0] for p in pairs], [p[1] for p in pairs]


def distill_fade(opt: dict) -> Optional[Tuple[int, int]]:
    """(start, end) iterations from ``distill.fade``, or None: every distillation term at full weight up to
    iteration ``start``, falling linearly to 0 at ``end``, and off after (a plain student step: no teacher, no
    cache). Two integers are iterations; two numbers between 0 and 1 with a decimal point are fractions of
    ``train.total_iter`` (``[0.1, 0.3]``: the KD study's 2k-6k of 20k), so the recipe keeps its shape when
    the budget changes; ``{fraction: [0.1, 0.3], at_most: [2000, 6000]}`` scales a short run's window and
    keeps a long run's at 2k-6k."""
    return _fade((opt.get('distill') or {}).get('fade'), opt, 'distill.fade')


def term_fades(opt: dict) -> List[Optional[Tuple[int, int]]]:
    """Each term's (start, end) or None, in ``train.distill_opts`` order. A term's own ``fade`` ([start, end],
    as ``distill.fade``; or false: full weight to the end) overrides ``distill.fade``, so feature terms can
    fade out early while the output term stays. Distillation is off once every term has faded."""
    default = distill_fade(opt)
    fades = []
    for i, term in enumerate((opt.get('train') or {}).get('distill_opts') or []):
        own = term.get('fade') if isinstance(term, dict) else None
        fades.append(default if own is None else None if own is False
                     else _fade(own, opt, f'train.distill_opts[{i}].fade'))
    return fades


def _fade(fade, opt, where):
    if fade is None:
        return None
    bad = SRKDError(f'{where} must be [start, end], two iterations (integers) or two fractions of '
                    f'train.total_iter (0.0 to 1.0), with start < end, or {{fraction: [start, end], at_most: '
                    f'[start, end]}} (fractions, each at most that many iterations), not {fade!r}')
    if isinstance(fade, dict):
        # fractions of the budget, each capped in iterations: the KD study's feature term helps early and in
        # absolute iterations (2,000-6,000), so a longer run keeps that window (docs/kd_study.md, "Budget")
        if set(fade) != {'fraction', 'at_most'}:
            raise bad
        start, end = _fraction_fade(fade['fraction'], opt, where, bad)
        cap = _iteration_fade(fade['at_most'], bad)
        return min(start, cap[0]), min(end, cap[1])
    if isinstance(fade, (list, tuple)) and len(fade) == 2 and all(isinstance(v, float) for v in fade):
        return _fraction_fade(fade, opt, where, bad)
    return _iteration_fade(fade, bad)


def _iteration_fade(fade, bad):
    if not isinstance(fade, (list, tuple)) or len(fade) != 2 or not all(is_int(v) for v in fade) \
            or not 0 <= fade[0] < fade[1]:
        raise bad
    return int(fade[0]), int(fade[1])


def _fraction_fade(fade, opt, where, bad):
    if not isinstance(fade, (list, tuple)) or len(fade) != 2 or not all(isinstance(v, float) for v in fade) \
            or not 0 <= fade[0] < fade[1] <= 1:
        raise bad
    total = (opt.get('train') or {}).get('total_iter')
    if not is_int(total) or total <= 0:
        raise SRKDError(f'{where} {list(fade)} is a fraction of train.total_iter, which must be a '
                        f'positive integer, not {total!r}')
    start, end = round(fade[0] * total), round(fade[1] * total)
    if start >= end:
        raise bad
    return start, end


def fade_factor(fade: Optional[Tuple[int, int]], current_iter: int) -> float:
    """A distillation term's weight multiplier at ``current_iter`` (1 without a fade)."""
    if fade is None or current_iter <= fade[0]:
        return 1.0
    return max(0.0, (fade[1] - current_iter) / (fade[1] - fade[0]))


def nonfinite_names(state_dict: dict) -> List[str]:
    """Names of the tensors in ``state_dict`` that hold NaN or inf."""
    import torch
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def teacher_path(opt: dict) -> str:
    """The teacher's checkpoint, ``path.pretrain_network_t``: given, and a file."""
    import os
    path = (opt.get('path') or {}).get('pretrain_network_t')
    if not path:
        raise SRKDError('path.pretrain_network_t is missing: the teacher needs its weights')
    if not isinstance(path, str) or not os.path.isfile(os.path.expanduser(path)):
        raise SRKDError(f'teacher checkpoint not found: {path}')
    return path


def check_teacher_scale(t_up: int, s_up: int) -> None:
    """The teacher upscales as much as the student."""
    if t_up != s_up:
        raise SRKDError(f'teacher and student scales differ: network_t upscale x{t_up}, network_g upscale x{s_up}')
