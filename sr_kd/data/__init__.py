"""Datasets registered in BasicSR's DATASET_REGISTRY."""
from sr_kd.data.hr_dataset import HROnlyDataset  # noqa: F401
