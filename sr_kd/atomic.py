"""Write a file under a temporary name in its own folder and rename it, so a kill never leaves a torn
file: a batch re-run can trust every output it finds, and auto-resume every checkpoint.

The result gets the user's usual permissions (0666 less the umask), also where the writer makes its file
the way ``mkstemp`` does, 0600 (safetensors' ``save_file`` does).
"""
import os
import secrets
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@contextmanager
def atomic_path(path: str, keep_ext: bool = True) -> Iterator[str]:
    """Yield a temporary path next to ``path``; fsync and rename it to ``path`` on success.

    ``keep_ext`` keeps the extension on the temporary name (Pillow picks the format from it). Checkpoints
    pass False: BasicSR's auto-resume lists ``*.state`` files, and a torn temporary must not be one.
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    ext = os.path.splitext(name)[1] if keep_ext else ''
    tmp = os.path.join(folder, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}')
    try:
        yield tmp
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_save(obj: object, path: str) -> None:
    """torch.save to ``path`` through a temporary file and an atomic rename."""
    import torch
    with atomic_path(path, keep_ext=False) as tmp, open(tmp, 'xb') as f:
        torch.save(obj, f)


def atomic_write_text(path: str, text: str) -> None:
    """Write a text file through a temporary name and a rename."""
    with atomic_path(path, keep_ext=False) as tmp, open(tmp, 'x') as f:
        f.write(text)


def atomic_savefig(fig: 'Figure', path: str, **kwargs: Any) -> str:
    """Lay out a matplotlib figure, write it to ``path`` (a PNG unless ``format`` says) through a temporary
    name and a rename, and close it: a reader never sees half an image."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    plt.close(fig)
    return path
