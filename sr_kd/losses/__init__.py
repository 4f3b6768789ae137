"""Distillation losses, registered in BasicSR's LOSS_REGISTRY on import (one module per family).

Every module in this folder is imported, so a new family needs no edit here.
"""
import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    if _m.name != 'base':
        importlib.import_module(f'{__name__}.{_m.name}')
