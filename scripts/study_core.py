"""What the studies and benchmarks share: where the repository and ../shared are, the machine a figure was
measured on, and an unfinished run's progress kept in the repository (its newest state only: what resume
needs) and put back on another machine."""
import os
import platform
import shutil
from typing import Iterable, Optional

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SHARED = os.path.join(os.path.dirname(REPO), 'shared')
STUDY_ROOT = os.path.expanduser('~/sr_kd_study')  # where study runs live: outside the repository


def machine() -> str:
    """The GPU where runs use one, CPU model, bf16 instructions where present (two 2-core Xeons of one model
    name differ in them, and seconds compare only within one machine), cores, Python."""
    import torch

    from sr_kd.hardware import cpu_has_bf16, cpu_name
    gpu = f'{torch.cuda.get_device_name()}, ' if torch.cuda.is_available() else ''
    bf16 = ' with bf16 instructions' if cpu_has_bf16() else ''
    return f'{gpu}{cpu_name() or "?"}{bf16}, {os.cpu_count()} cores, {platform.python_version()}'


def newest_state(exp: str) -> Optional[int]:
    """The iteration of the newest training state in the BasicSR experiment folder ``exp`` (None: none)."""
    states = os.path.join(exp, 'training_states')
    iters = [int(f[:-6]) for f in os.listdir(states) if f.endswith('.state') and f[:-6].isdigit()] \
        if os.path.isdir(states) else []
    return max(iters) if iters else None


_TEMPORARY = '.partial'


def is_temporary(folder: str) -> bool:
    """True for a half-written copy of a run's progress (``keep_progress`` before its rename): never a run."""
    return _TEMPORARY in os.path.basename(folder)


def keep_progress(run: str, exp: str, keep: str, extra: Iterable[str] = ()) -> Optional[int]:
    """Copy what the run in folder ``run`` needs to resume into ``keep`` (replaced atomically): the newest
    training state of its experiment folder ``exp`` and its weights at that iteration, its best weights,
    its logs, and the files ``extra`` (paths relative to ``run``). No memory banks or caches: a state holds
    the student, its optimizer and the terms' own modules. Returns the iteration kept (None: nothing)."""
    it = newest_state(exp)
    if it is None or not os.path.isfile(os.path.join(exp, 'models', f'net_g_{it}.pth')):
        return None
    wanted = [os.path.join(exp, 'training_states', f'{it}.state'), os.path.join(exp, 'models', f'net_g_{it}.pth'),
              os.path.join(exp, 'models', 'net_g_best.pth')]
    wanted += [os.path.join(exp, f) for f in os.listdir(exp) if f.endswith(('.jsonl', '.json', '.log', '.yml'))]
    wanted += [os.path.join(run, f) for f in extra]
    tmp = f'{keep}{_TEMPORARY}{os.getpid()}'  # two studies at once never share a temporary
    shutil.rmtree(tmp, ignore_errors=True)
    for path in wanted:
        if os.path.isfile(path):
            dst = os.path.join(tmp, os.path.relpath(path, run))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(path, dst)
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(os.path.dirname(keep), exist_ok=True)
    try:
        os.rename(tmp, keep)
    except OSError:  # another saver of the same run put its copy there in between: theirs stands, no temporary left
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    print(f'progress of {os.path.basename(run)} kept at iteration {it}', flush=True)
    return it


def restore_progress(keep: str, run: str) -> bool:
    """Put kept progress back as the run's folder when that folder is missing (another machine, a new
    clone); True when it did."""
    if not os.path.isdir(keep) or os.path.isdir(run):
        return False
    shutil.copytree(keep, run)
    print(f'{os.path.basename(run)}: continuing from the kept progress', flush=True)
    return True
