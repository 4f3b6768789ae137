"""sr_kd: knowledge distillation for super-resolution on BasicSR.

Importing the package repairs basicsr 1.4.2 for today's torch (``compat``), then registers the
project's archs, models, losses and datasets in BasicSR's registries.
"""
from sr_kd import compat

compat.apply()

from sr_kd import archs  # noqa: E402,F401
from sr_kd import data  # noqa: E402,F401
from sr_kd import losses  # noqa: E402,F401
from sr_kd import models  # noqa: E402,F401

__version__ = '0.1.0'
