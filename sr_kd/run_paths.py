"""Where a run's files go and how to name them to the user: the repository, $SR_KD_ROOT (experiments/,
results/, tb_logger/ under it), where caches go ($SR_KD_CACHE), paths shown as typed from the current folder,
and the ``sr_kd/train.py`` command that runs an option file again (its interpreter and root included, so
it works as printed)."""
import os
import sys
from typing import Optional

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def root_path() -> str:
    """Where experiments/, results/ and tb_logger/ go: $SR_KD_ROOT if set (tests, shared clusters),
    else the repository, as with BasicSR's own scripts."""
    return os.path.abspath(os.environ.get('SR_KD_ROOT') or ROOT)


def cache_home() -> str:
    """Where sr_kd's caches go (backend artefacts, offline teacher targets): $SR_KD_CACHE, else ~/.cache/sr_kd."""
    return os.environ.get('SR_KD_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'sr_kd')


def shown(path: str) -> str:
    """``path`` as a user types it from here: relative below the current folder, else absolute."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith(os.pardir) else os.path.abspath(path)


def train_command(opt_path: str, *extra: str, root: Optional[str] = None) -> str:
    """The command that runs ``sr_kd/train.py`` on ``opt_path`` from here: this interpreter (the one with
    torch and basicsr, not whatever ``python`` is on PATH) and $SR_KD_ROOT as ``root`` says, else as now."""
    import shlex
    root = root or (root_path() if os.environ.get('SR_KD_ROOT') else None)
    env = f'SR_KD_ROOT={shlex.quote(root)} ' if root else ''
    words = [shown(sys.executable), shown(os.path.join(ROOT, 'sr_kd', 'train.py')), '-opt', opt_path, *extra]
    return env + ' '.join(shlex.quote(w) for w in words)
