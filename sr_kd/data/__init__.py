"""Datasets registered in BasicSR's DATASET_REGISTRY."""
from sr_kd.data.hr_dataset import HROnlyDataset  # noqa: F401
from sr_kd.data.plain_dataset import PlainImageDataset  # noqa: F401,E402
