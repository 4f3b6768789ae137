"""The frozen teacher: built and loaded from the option file, run at the precision the machine does best,
or read from its offline cache.

``Teacher`` is the one object for all of it, so training (online or offline, with or without ground
truth), its validation against the teacher, ``sr-kd cache-teacher`` and ``sr-kd distill`` load and run
the same teacher the same way.
"""
import os
from typing import TYPE_CHECKING, List, Optional

import torch

from basicsr.archs import build_network
from basicsr.utils import get_root_logger

from sr_kd.checkpoint import check_fits, extract_state_dict, load_checkpoint
from sr_kd.errors import SRKDError
from sr_kd.hardware import bf16_is_native
from sr_kd.rules import check_teacher_scale, teacher_path

if TYPE_CHECKING:
    from sr_kd.distill.taps import FeatureTaps
    from sr_kd.distill.teacher_cache import TeacherCache
    from sr_kd.losses.base import DistillLoss

TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16')
TEACHER_MODES = ('online', 'offline')


def teacher_mode(opt: dict) -> str:
    """``distill.teacher``: 'online' (default: the teacher runs on every batch) or 'offline' (its cache)."""
    d_opt = opt.get('distill') or {}
    mode = d_opt.get('teacher', 'online')
    if mode not in TEACHER_MODES:
        raise SRKDError(f"distill.teacher must be 'online' or 'offline', not {mode!r}")
    if d_opt.get('teacher_cache') is not None and not isinstance(d_opt['teacher_cache'], str):
        raise SRKDError(f'distill.teacher_cache must be a folder path, not {d_opt["teacher_cache"]!r}')
    return mode


def cache_root(opt: dict, experiments_dir: str) -> str:
    """Where the offline cache lives: ``distill.teacher_cache``, else beside the experiments."""
    from sr_kd.distill.teacher_cache import default_root
    return (opt.get('distill') or {}).get('teacher_cache') or default_root(experiments_dir)


def teacher_dtype(opt: dict, device: torch.device) -> Optional[torch.dtype]:
    """torch.bfloat16 or None (fp32) for ``distill.teacher_precision`` (auto | fp32 | bf16)."""
    choice = str((opt.get('distill') or {}).get('teacher_precision', 'auto'))
    if choice not in TEACHER_PRECISIONS:
        raise SRKDError(f'distill.teacher_precision must be one of {", ".join(TEACHER_PRECISIONS)}, not {choice!r}')
    if choice == 'fp32':
        return None
    if choice == 'bf16':
        return torch.bfloat16
    return torch.bfloat16 if bf16_is_native(device) else None


def run_teacher(net: torch.nn.Module, x: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """Teacher forward under no_grad, autocast to ``dtype`` when one is given; the output in fp32."""
    with torch.no_grad(), torch.autocast(x.device.type, dtype or torch.bfloat16, enabled=dtype is not None):
        return net(x).float()


def build_teacher(opt: dict, device: torch.device) -> torch.nn.Module:
    """The teacher of ``network_t`` with the weights of ``path.pretrain_network_t`` (``param_key_t``,
    ``strict_load_t``): eval mode, no gradients, on ``device``; its scale must equal the student's."""
    if 'network_t' not in opt:
        raise SRKDError('SRKDModel needs a network_t (the teacher) in the option file')
    path_opt = opt['path']
    load_path = teacher_path(opt)  # one owner with the start-up check (sr_kd.rules)
    # --- network_t: {type: auto}, the arch and scale from the file (sr_kd.archs.loading) ---
    from sr_kd.archs.loading import is_auto, load_teacher
    if is_auto(opt['network_t']):
        net, info = load_teacher(opt, device)
        get_root_logger().info(f'Teacher {info.label} (found by {info.source}) loaded from {load_path} (frozen).')
        return net
    # ---
    try:
        net = build_network(opt['network_t'])
    except TypeError as e:
        raise SRKDError(f'network_t: {e}') from e
    sd = extract_state_dict(load_checkpoint(load_path), path_opt.get('param_key_t', 'params'))
    strict = path_opt.get('strict_load_t', True)
    check_fits(net, sd, strict, f'teacher checkpoint {load_path} does not fit network_t ({opt["network_t"]["type"]})')
    net.load_state_dict(sd, strict=strict)
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    s_up = opt['network_g'].get('upscale', opt.get('scale'))
    t_up = opt['network_t'].get('upscale', opt.get('scale'))
    check_teacher_scale(t_up, s_up)
    get_root_logger().info(f'Teacher {opt["network_t"]["type"]} loaded from {load_path} (frozen).')
    return net


class Teacher:
    """A run's frozen teacher: ``net`` (any weights file, built by ``build_teacher``), ``dtype`` (its
    precision) and, with ``distill.teacher: offline``, ``cache`` (its stored targets, ``use_cache``)."""

    def __init__(self, opt: dict, device: torch.device):
        self.opt = opt
        self.mode = teacher_mode(opt)
        self.net = build_teacher(opt, device)
        self.dtype = teacher_dtype(opt, device)
        self.cache = None
        self._image_targets = {}

    @property
    def precision(self) -> str:
        return 'bf16' if self.dtype is not None else 'fp32'

    def __call__(self, lq: torch.Tensor) -> torch.Tensor:
        """The teacher's SR output (fp32) on a batch, online."""
        return run_teacher(self.net, lq, self.dtype)

    def use_cache(self, taps: 'FeatureTaps', names: List[str], terms: List['DistillLoss'],
                  experiments_dir: str) -> None:
        """Offline: the cache of this teacher on the training dataset's images (built now when missing);
        ``names``/``terms``: the run's distillation terms, which say what maps it must hold."""
        from sr_kd.distill import teacher_cache
        specs = teacher_cache.offline_specs(names, terms)
        self.cache = teacher_cache.ensure(self.opt, self, taps, specs, self.opt['datasets']['train'],
                                          cache_root(self.opt, experiments_dir))

    def image_target(self, path: str, lq: torch.Tensor) -> torch.Tensor:
        """The teacher's output on one whole validation image as its saved image would be (clamped to [0, 1],
        rounded to 8 bits, so metrics read it exactly as they read a PNG of it); computed once per path and
        kept as uint8."""
        if path not in self._image_targets:
            self._image_targets[path] = self(lq).clamp_(0, 1).mul_(255).round_().to(torch.uint8).cpu()
        return self._image_targets[path].to(lq.device).float().div_(255)


def cache_for_options(opt: dict, device: torch.device, root_path: str) -> 'TeacherCache':
    """The offline cache of an option file, built without a model (``sr-kd cache-teacher``): the same teacher,
    taps, terms and images as the training run of that file, so the run finds it under the same key."""
    from sr_kd.distill.head import build_terms
    from sr_kd.distill.taps import FeatureTaps

    if teacher_mode(opt) != 'offline':
        raise SRKDError('this option file does not use the offline teacher: set distill.teacher: offline')
    opt.setdefault('scale', opt.get('network_t', {}).get('upscale', 1))
    names, terms = build_terms(opt.get('train', {}).get('distill_opts'))
    teacher = Teacher(opt, device)
    d_opt = opt.get('distill') or {}
    if d_opt.get('pairs') == 'auto':
        raise SRKDError('distill.pairs: auto is resolved when training starts (it needs the student); list the '
                        'pairs (sr-kd inspect names the modules), or let training build the cache')
    taps = FeatureTaps(teacher.net, [str(p[1]) for p in d_opt.get('pairs') or []], role='teacher')
    teacher.use_cache(taps, names, terms, os.path.join(root_path, 'experiments'))
    return teacher.cache
