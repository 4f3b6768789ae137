"""Write a file under a temporary name in its own folder and rename it, so a kill never leaves a torn
file and a batch re-run can trust that every output it finds is whole.

The temporary file is created with ``open(..., 'xb')``, not ``mkstemp``, so the result gets the user's
usual permissions (umask) instead of 0600.
"""
import os
import secrets
from contextlib import contextmanager


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path`` (same extension); rename it to ``path`` on success."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{os.path.splitext(name)[1]}')
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
