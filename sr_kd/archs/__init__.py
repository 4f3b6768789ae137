"""Networks registered in BasicSR's ARCH_REGISTRY, each with its description (``description.ARCHS``).

An architecture is one ``*_arch.py`` file here (BasicSR's convention): every one is imported, by name, and
spandrel's catch-all last. Detection tries the descriptions in that order: sr_kd's own archs first.
"""
import importlib
import pkgutil

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name.endswith('_arch'):
        importlib.import_module(f'{__name__}.{_m.name}')

from sr_kd.archs import spandrel_archs  # noqa: F401,E402 - registered last: the catch-all
from sr_kd.archs.imdn_arch import CCA, IMDB, IMDN, IMDN_AS  # noqa: F401,E402 - the paper's network, by name
