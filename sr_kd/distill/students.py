"""Student presets for ``sr-kd distill`` and the choice among them by measured speed.

Each preset is a network option (BasicSR's ``network_g``) of a small architecture. A candidate is timed in
its inference form (the network saved, then loaded back by the one loader every command uses, so SPAN is
folded as ``upscale`` runs it), on a whole image, through the eager backend at the precision ``upscale``
picks here (``--precision auto``), side by side with the teacher in the same way. ``choose`` takes, of
those at least ``speedup`` times faster than the teacher, the slowest: the most computation the speed
allows (parameter counts mislead across families: SPAN loads with its training branches, which the folded
network never runs). The timer is a parameter so tests can give a fake one.
"""
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

import torch

from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo


def _compact(feat, conv):
    return {'type': 'Compact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': feat, 'num_conv': conv}


# name -> network_g without its scale (added for the teacher's); from small to large within each family
PRESETS: Dict[str, dict] = {
    'compact-16x4': _compact(16, 4),
    'compact-24x6': _compact(24, 6),
    'compact-32x6': _compact(32, 6),
    'compact-32x8': _compact(32, 8),
    'compact-48x8': _compact(48, 8),
    'compact-48x12': _compact(48, 12),
    'compact-64x8': _compact(64, 8),
    'imdn-32x4': {'type': 'IMDN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_modules': 4},
    'span-16': {'type': 'SPAN', 'num_in_ch': 3, 'num_out_ch': 3, 'feature_channels': 16},
    'span-28': {'type': 'SPAN', 'num_in_ch': 3, 'num_out_ch': 3, 'feature_channels': 28},
    'plksr-32x4': {'type': 'PLKSR', 'dim': 32, 'n_blocks': 4, 'kernel_size': 13},
    'plksr-64x6': {'type': 'PLKSR', 'dim': 64, 'n_blocks': 6, 'kernel_size': 13},
}


def network_opt(preset: str, scale: int) -> dict:
    """The ``network_g`` of a preset at ``scale``."""
    if preset not in PRESETS:
        raise SRKDError(f'--student must be auto or one of {", ".join(PRESETS)}; got {preset!r}')
    return {**PRESETS[preset], 'upscale': scale}


def inference_form(net_opt: dict) -> Tuple[torch.nn.Module, 'ModelInfo']:
    """(model, ModelInfo) of a freshly initialised network as ``upscale`` would load its saved weights."""
    from basicsr.archs import build_network

    from sr_kd.archs.loading import load_state_dict_model
    net = build_network(dict(net_opt))
    return load_state_dict_model({k: v.clone() for k, v in net.state_dict().items()}, net_opt['type'])


@dataclass
class Timed:
    """One network timed on the same input as the teacher."""
    name: str
    params: int
    seconds: float
    speedup: float        # teacher seconds / these seconds
    drift: float = 0.0    # the teacher's row: its slowest round over its fastest, less 1 (0.3: 30%)


def forward_timer(model: torch.nn.Module, info: 'ModelInfo', x: torch.Tensor, precision: str) -> Callable[[], float]:
    """A callable that runs ``upscale``'s whole-image forward of ``model`` on ``x`` once (eager backend,
    channels-last, ``precision``) and returns its wall time."""
    from sr_kd.backends import Options, prepare
    from sr_kd.inference import upscale
    runner = prepare('eager', model, info, precision, Options(device=str(x.device)))  # channels-last, fused

    def once() -> float:
        t0 = time.perf_counter()
        upscale(runner.fn, x, info, precision=runner.autocast, channels_last=True)
        if x.device.type == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    return once


def forward_seconds(model: torch.nn.Module, info: 'ModelInfo', x: torch.Tensor, precision: str,
                    repeats: int = 3) -> float:
    """Fastest wall time of ``upscale``'s whole-image forward in ``repeats`` runs after one warm-up: a busy
    machine only adds time (one-image medians moved by up to 2x between two runs on a quiet 2-core machine;
    docs/distill.md)."""
    once = forward_timer(model, info, x, precision)
    once()
    return min(once() for _ in range(repeats))


def parameters(model: torch.nn.Module, info: 'ModelInfo') -> int:
    """Parameters an inference forward uses (SPAN's folded training branches do not count)."""
    from sr_kd.archs.loading import inference_parameters
    return inference_parameters(model, info)


ROUNDS = 3  # interleaved rounds of time_candidates (each network: one warm-up, then one run a round)


def time_candidates(teacher: torch.nn.Module, teacher_info: 'ModelInfo', scale: int, x: torch.Tensor, precision: str,
                    names: Optional[List[str]] = None, timer: Callable = forward_timer,
                    rounds: int = ROUNDS) -> List[Timed]:
    """The teacher (first row) and each preset of ``names`` (default all), timed on ``x`` in interleaved
    rounds: after one warm-up each, every round runs every network once (``timer`` gives the one-run
    callables) and each network's fastest round counts. A load that comes or goes while timing falls on
    every network in the rounds it lasts, so no preset's ratio tilts by when it was timed; how far the
    teacher's rounds spread is its row's ``drift``."""
    nets = [('teacher', teacher, teacher_info)]
    for name in names or list(PRESETS):
        model, info = inference_form(network_opt(name, scale))
        nets.append((name, model.to(x.device), info))
    runs = [timer(model, info, x, precision) for _, model, info in nets]
    for once in runs:
        once()
    times = [[] for _ in nets]
    for _ in range(rounds):
        for seconds, once in zip(times, runs):
            seconds.append(once())
    best = [min(t) for t in times]
    rows = [Timed('teacher', parameters(teacher, teacher_info), best[0], 1.0, (max(times[0]) - best[0]) / best[0])]
    return rows + [Timed(name, parameters(model, info), sec, best[0] / sec)
                   for (name, model, info), sec in zip(nets[1:], best[1:])]


def busy_note(rows: List[Timed], limit: float = 0.2) -> Optional[str]:
    """One line when the teacher's two timings differ by more than ``limit``: the machine was busy, so the
    speed-ups (and ``auto``'s choice) are less sure than on a quiet one."""
    t = rows[0]
    if t.drift <= limit:
        return None
    return (f"note: the teacher's time moved by {t.drift:.0%} while timing: the machine is busy, so the "
            f'speed-ups above may be off and auto may pick a neighbour of the quiet-machine choice '
            f'(--student NAME fixes it; docs/distill.md has the quiet-machine table)')


def choose(rows: List[Timed], speedup: float) -> Timed:
    """Of the candidates (``rows[1:]``) at least ``speedup`` times faster than the teacher, the slowest (the
    most computation the speed allows); one line with the fastest measured when none is."""
    fast = [r for r in rows[1:] if r.speedup >= speedup]
    if not fast:
        best = max(rows[1:], key=lambda r: r.speedup)
        raise SRKDError(f'no student preset is {speedup:g}x faster than this teacher here (fastest: {best.name}, '
                        f'{best.speedup:.1f}x); lower --speedup')
    return max(fast, key=lambda r: r.seconds)


def speed_table(rows: List[Timed], chosen: Optional[str] = None) -> str:
    """The measured rows as a small text table; the chosen one marked."""
    lines = [f'{"network":<14} {"parameters":>11} {"ms/image":>9} {"speed-up":>9}']
    for r in rows:
        mark = '  <- chosen' if r.name == chosen else ''
        lines.append(f'{r.name:<14} {r.params:>11,} {r.seconds * 1000:>9.1f} {r.speedup:>8.2f}x{mark}')
    return '\n'.join(lines)
