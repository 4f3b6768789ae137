"""BasicSR models registered in MODEL_REGISTRY."""
from sr_kd.models.srkd_model import SRKDModel  # noqa: F401
