"""sr_kd: knowledge distillation for super-resolution on BasicSR.

Importing the package applies the repairs of basicsr 1.4.2 that keep every BasicSR model's results
identical (``compat_identical``; docs/design.md, "The compat rule"), then registers the project's
archs, models, losses and datasets in BasicSR's registries.
"""
import importlib.util

from sr_kd.errors import SRKDError

__version__ = '0.1.0'


class BasicSRMissing(SRKDError, ImportError):
    """basicsr is not installed (pip does not install it with sr_kd: its metadata pulls a CUDA torch)."""


if importlib.util.find_spec('basicsr') is None:
    raise BasicSRMissing('sr_kd needs basicsr 1.4.2, which `pip install sr_kd` leaves out (its metadata would '
                         'replace your torch with a CUDA build): pip install --no-deps --no-build-isolation '
                         'basicsr==1.4.2   (or run bash scripts/install.sh)')

from sr_kd import compat_identical  # noqa: E402

compat_identical.apply()

from sr_kd import archs  # noqa: E402,F401
from sr_kd import data  # noqa: E402,F401
from sr_kd import losses  # noqa: E402,F401
from sr_kd import models  # noqa: E402,F401
