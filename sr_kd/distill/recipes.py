"""Recipes of ``sr-kd distill``: how the student imitates its teacher, as the option file's ``distill`` and
``train`` sections. Each is measured against ``output-online`` (L1 to the teacher's output, the teacher run
on every batch: what the teacher modes of other tools do) at equal wall time; docs/distill.md has the
figures. ``DEFAULT`` (``auto``) is the measured winner: a student cut from its teacher (Compact teachers)
trained on the cached target, else the cached target alone (about twice the steps of the online teacher in
the same time on a CPU with bf16), both on crops that are not flipped or turned (the cache holds the
teacher's output on the image as it is; teachers are not equivariant).

The schedule is written in fractions of ``total_iter`` (``sr-kd distill`` sets it from the time budget),
so a recipe means the same at any budget.
"""
from typing import Dict

from sr_kd.errors import SRKDError

LR = 5e-4


def _train(total_iter: int, terms: list) -> dict:
    return {'optim_g': {'type': 'Adam', 'lr': LR, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter], 'restart_weights': [1],
                          'eta_min': LR / 100},
            'total_iter': total_iter, 'warmup_iter': -1, 'nonfinite': 'stop', 'distill_opts': terms}


OUT_L1 = {'type': 'OutputDistillLoss', 'name': 'out', 'criterion': 'l1', 'loss_weight': 1.0, 'fade': False}
OUT_CHARB = {**OUT_L1, 'criterion': 'charbonnier'}
FS = {'type': 'FeatureStatsLoss', 'name': 'fs', 'stat': 'pow_mean', 'p': 2, 'normalize': True, 'loss_weight': 0.1}

# name -> (teacher mode, LR crop side, terms, distill section extras)
RECIPES: Dict[str, tuple] = {
    'output-online': ('online', 32, [OUT_L1], {}),
    'output-offline': ('offline', 32, [OUT_L1], {}),
    'output-offline-crop48': ('offline', 48, [OUT_L1], {}),
    'charbonnier-offline-crop48': ('offline', 48, [OUT_CHARB], {}),
    'fs-offline-crop48': ('offline', 48, [OUT_L1, FS], {'pairs': 'auto', 'fade': [0.1, 0.3]}),
    # the student cut from the teacher (sr_kd.distill.init_from_teacher): Compact teachers and students only
    'init-offline': ('offline', 32, [OUT_L1], {'init': 'teacher'}),
    'init-offline-crop48': ('offline', 48, [OUT_L1], {'init': 'teacher'}),
    # the outer 4 LR pixels of each crop left out of the loss (OutputDistillLoss crop_border = 4 x scale):
    # there the cached whole-image target depends on pixels the student does not see
    'output-offline-border4': ('offline', 32, [OUT_L1], {'border': 4}),
    'init-offline-border4': ('offline', 32, [OUT_L1], {'init': 'teacher', 'border': 4}),
    # no flips or rotations: the cache holds the teacher's output on the image as it is, and a teacher that
    # is not equivariant (realesr-animevideov3: 35-41 dB between its output on a flipped crop and the
    # flipped output) gives a flipped crop a target it never produces (docs/distill.md)
    'output-offline-noaug': ('offline', 32, [OUT_L1], {'augment': False}),
    'init-offline-noaug': ('offline', 32, [OUT_L1], {'init': 'teacher', 'augment': False}),
    # the default with another loss: Charbonnier instead of L1, or the feature-statistics term added at
    # matched depths (pairs: auto; the cut student's channels are a subset of the teacher's), faded out by 30%
    'init-charbonnier-noaug': ('offline', 32, [OUT_CHARB], {'init': 'teacher', 'augment': False}),
    'init-fs-noaug': ('offline', 32, [OUT_L1, FS], {'init': 'teacher', 'augment': False, 'pairs': 'auto',
                                                    'fade': [0.1, 0.3]}),
}
NOT_DISTILL = ('init', 'border', 'augment')  # recipe extras that are not keys of the distill section
DEFAULT = 'auto'  # resolve(): AUTO_CUT for a Compact teacher and student, AUTO_OTHER for the rest
AUTO_CUT, AUTO_OTHER = 'init-offline-noaug', 'output-offline-noaug'


def resolve(name: str, teacher_sd: dict, student: str) -> str:
    """``auto``: the measured winner that applies (a student cut from its teacher needs a Compact teacher
    and a Compact or automatic student preset); any other name as it is."""
    if name != 'auto':
        return name
    from sr_kd.distill.init_from_teacher import compact_layers
    from sr_kd.distill.students import PRESETS
    try:
        compact_layers(teacher_sd, 'the teacher')
    except SRKDError:
        return AUTO_OTHER
    return AUTO_CUT if student == 'auto' or PRESETS[student]['type'] == 'Compact' else AUTO_OTHER


def recipe(name: str) -> tuple:
    if name not in RECIPES:
        raise SRKDError(f'--recipe must be auto or one of {", ".join(RECIPES)}; got {name!r}')
    return RECIPES[name]


def sections(name: str, total_iter: int, cache_root: str, scale: int) -> dict:
    """The ``distill`` and ``train`` sections of recipe ``name`` for ``total_iter`` iterations of a x``scale``
    teacher."""
    mode, _, terms, extra = recipe(name)
    distill = {'teacher': mode, **{k: v for k, v in extra.items() if k not in NOT_DISTILL}}
    if mode == 'offline':
        distill['teacher_cache'] = cache_root
    terms = [dict(t) for t in terms]
    if extra.get('border'):
        for t in terms:
            if t['type'] == 'OutputDistillLoss':
                t['crop_border'] = extra['border'] * scale
    return {'distill': distill, 'train': _train(total_iter, terms)}


def augments(name: str) -> bool:
    """Whether the recipe's crops are flipped and turned (the dataset's use_hflip and use_rot)."""
    return recipe(name)[3].get('augment', True)


def starts_from_teacher(name: str) -> bool:
    """Whether the recipe's student is initialised from the teacher (channel and layer selection)."""
    return recipe(name)[3].get('init') == 'teacher'
