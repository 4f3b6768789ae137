"""Networks registered in BasicSR's ARCH_REGISTRY."""
from sr_kd.archs.imdn_arch import CCA, IMDB, IMDN, IMDN_AS  # noqa: F401
