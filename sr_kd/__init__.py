"""sr_kd: knowledge distillation for super-resolution on BasicSR.

Importing the package applies the repairs of basicsr 1.4.2 that keep every BasicSR model's results
identical (``compat_identical``; docs/design.md, "The compat rule"), then registers the project's
archs, models, losses and datasets in BasicSR's registries (``load()``).

The one exception: the ``sr-kd`` console script parses its arguments first (``--help`` and ``--version``
answer without importing torch or basicsr) and calls ``load()`` itself.
"""
import importlib.util
import os
import sys

from sr_kd.errors import SRKDError

__version__ = '0.1.0'

INSTALL_BASICSR = 'pip install --no-deps --no-build-isolation basicsr==1.4.2'


class BasicSRMissing(SRKDError, ImportError):
    """basicsr is not installed (pip does not install it with sr_kd: its metadata pulls a CUDA torch)."""


_loaded = False


def load():
    """Repairs + registries, once: what ``import sr_kd`` does."""
    global _loaded
    if _loaded:
        return
    try:
        found = importlib.util.find_spec('basicsr') is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise BasicSRMissing(f'sr_kd needs basicsr 1.4.2, which `pip install sr_kd` leaves out (its metadata would '
                             f'replace your torch with a CUDA build): {INSTALL_BASICSR}   (or run bash '
                             'scripts/install.sh)')
    from sr_kd import compat_identical
    compat_identical.apply()
    from sr_kd import archs, data, losses, models  # noqa: F401 - registration
    _loaded = True


if os.path.basename((getattr(sys, 'argv', None) or [''])[0]) != 'sr-kd':
    load()
