"""Networks registered in BasicSR's ARCH_REGISTRY, each with its description (``description.ARCHS``).

Detection tries the descriptions in this import order: sr_kd's own archs first, spandrel's last.
"""
from sr_kd.archs.imdn_arch import CCA, IMDB, IMDN, IMDN_AS  # noqa: F401
from sr_kd.archs import spandrel_archs  # noqa: F401,E402 - registered last: the catch-all
