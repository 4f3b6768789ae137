"""``--backend auto``: the fastest backend for this machine and model, measured once and remembered.

The first call measures every available backend at the asked precision on the first real input (each
one warmed up, then timed in 3-10 interleaved rounds, about 3 s each, fastest round counts), keeps the decision in
``<cache>/auto/`` keyed by the model's content, the precision and the machine (CPU model, logical CPUs,
threads, torch/onnxruntime versions), and says what it chose and why. Later runs read the decision and
build or load only the chosen backend. A backend whose dependency is missing is skipped with a line.
"""
import hashlib
import json
import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Dict

import torch

from sr_kd.atomic import atomic_write_text
from sr_kd.backends.base import Backend, Options, Runner
from sr_kd.backends.cache import cache_root, model_digest

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo

# Interleaved rounds, fastest round counts: at least MIN_ROUNDS, more (up to MAX_ROUNDS) until each backend
# has run about BUDGET_S seconds. On a 2-core machine one round's noise is +-10%, as large as the margins
# between backends (onnxruntime 1.05-1.15x eager on a 32x4 tile); 2 rounds picked the slower one in 1 of 6
# tries there, 10 rounds in none of 4. Each call waits SETTLE_S (or its own duration, if shorter) first so
# that the previous backend's spinning worker threads have parked and do not slow it.
MIN_ROUNDS, MAX_ROUNDS, BUDGET_S, SETTLE_S = 3, 10, 3.0, 0.1


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


def machine() -> Dict[str, Any]:
    """What the speed ranking depends on besides the model."""
    from sr_kd.hardware import cpu_name
    name = cpu_name()
    try:
        import onnxruntime
        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    return {'cpu': name, 'logical_cpus': os.cpu_count(), 'threads': torch.get_num_threads(),
            'capability': torch.backends.cpu.get_cpu_capability(), 'torch': torch.__version__, 'onnxruntime': ort}


def decision_path(model: torch.nn.Module, precision: str, options: Options) -> str:
    key = json.dumps({'model': model_digest(model), 'precision': precision, 'machine': machine()}, sort_keys=True)
    root = options.cache_root or cache_root()
    return os.path.join(root, 'auto', hashlib.sha256(key.encode()).hexdigest()[:24] + '.json')


def _read(path):
    try:
        with open(path) as f:
            d = json.load(f)
        return d if isinstance(d.get('choice'), str) else None
    except (OSError, ValueError, AttributeError):
        return None


def _candidates(precision, options):
    from sr_kd.backends import PRECISIONS, missing
    names = [b for b, ps in PRECISIONS.items() if precision in ps]
    if not str(options.device).startswith('cpu'):
        names = [b for b in names if b == 'eager']
    usable = []
    for b in names:
        why = missing(b)
        if why:
            _say(f'auto: skipping {b}: {why}')
        else:
            usable.append(b)
    return usable


def _time(fns, x):
    """Best seconds per callable: one warm-up each, then interleaved rounds (see MIN_ROUNDS)."""
    times = {k: [] for k in fns}
    with torch.inference_mode():
        warm = {}
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            warm[k] = time.perf_counter() - t0
        rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(BUDGET_S / max(max(warm.values()), 1e-6))))
        for _ in range(rounds):
            for k, fn in fns.items():
                time.sleep(min(SETTLE_S, warm[k]))
                t0 = time.perf_counter()
                fn(x)
                times[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def prepare_auto(model: torch.nn.Module, info: 'ModelInfo', precision: str, options: Options,
                 exact_tiles: bool = False) -> Runner:
    from sr_kd.backends import prepare

    if exact_tiles:
        r = prepare('eager', model, info, precision, options)
        r.note = 'auto: eager (exact tiles hook the network)'
        return r
    names = _candidates(precision, options)
    path = decision_path(model, precision, options)
    known = _read(path)
    if known and known['choice'] in names:
        r = prepare(known['choice'], model, info, precision, options)
        r.fn = r.standalone()
        r.autocast = 'fp32'
        r.note = (f'auto: {known["choice"]} {precision}, measured on this machine on {known["measured"]} '
                  f'({_summary(known["seconds"])}; decision in {path})')
        _say(r.note)
        return r
    if len(names) == 1:
        r = prepare(names[0], model, info, precision, options)
        r.note = f'auto: {names[0]} {precision} (the only backend available for it)'
        _say(r.note)
        return r
    return _measuring_runner(model, info, precision, options, names, path)


def _summary(seconds):
    return ', '.join(f'{k} {v:.3f} s' for k, v in sorted(seconds.items(), key=lambda kv: kv[1]))


def _measuring_runner(model, info, precision, options, names, path):
    """A Runner that, on its first input, builds every candidate, times them, keeps the fastest."""
    from sr_kd.backends import prepare
    from sr_kd.errors import SRKDError

    runner = Runner(fn=None, backend='auto', precision=precision, autocast='fp32', eager=False)

    def first_call(x):
        fns = {}
        for b in names:
            try:
                fns[b] = prepare(b, model, info, precision, options).standalone()
            except SRKDError as e:
                _say(f'auto: skipping {b}: {e}')
        if not fns:
            raise SRKDError(f'auto: no backend could run {info.label} in {precision}')
        seconds = _time(fns, x)
        choice = min(seconds, key=seconds.get)
        record = {'choice': choice, 'precision': precision, 'seconds': seconds, 'shape': list(x.shape),
                  'measured': time.strftime('%Y-%m-%d', time.gmtime()), 'machine': machine(), 'model': info.label}
        atomic_write_text(path, json.dumps(record, indent=2))
        runner.backend = choice
        runner.fn = fns[choice]
        runner.note = (f'auto: {choice} {precision}, fastest on a {"x".join(map(str, x.shape[2:]))} input '
                       f'({_summary(seconds)}); decision kept in {path}')
        _say(runner.note)
        return runner.fn(x)

    def call(x):  # callers may keep this function: after the first call it forwards to the choice
        return first_call(x) if runner.backend == 'auto' else runner.fn(x)
    runner.fn = call
    return runner


BACKEND = Backend('auto', ('fp32', 'bf16', 'fp16', 'int8'),
                  'auto (the fastest, measured once per machine and model)', prepare_auto, cpu_only=False,
                  measured=False)
