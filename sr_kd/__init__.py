"""sr_kd: knowledge distillation for super-resolution on BasicSR.

Importing the package, or any of its modules, changes nothing in basicsr: it only makes basicsr importable
where no torchvision works (``compat_torchvision`` puts a stand-in into ``sys.modules``; basicsr imports
torchvision at import). ``load()`` applies the repairs of basicsr 1.4.2 that keep every BasicSR model's
results identical (``compat_identical``; docs/design.md, "The compat rule") and registers the project's
archs, models, losses and datasets in BasicSR's registries. The entry points call it (``sr_kd/train.py``,
``sr_kd/test.py``, ``sr-kd``, the tests' conftest); your own BasicSR code calls it once, before basicsr's
pipelines:

    import sr_kd
    sr_kd.load()

The ``sr-kd`` console script parses its arguments first (``--help`` and ``--version`` answer without
importing torch or basicsr), so importing the package there skips even the stand-in; ``load()`` adds it.
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


def load() -> None:
    """Repairs + registries, once (a second call does nothing)."""
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
    from sr_kd import compat_torchvision
    compat_torchvision.apply()
