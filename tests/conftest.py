"""Shared test helpers: where ../shared is (tests that need it skip when it is absent) and tiny models."""
import os

import pytest
import torch

import sr_kd

sr_kd.load()  # compat + registries for every test

# Test tensors are tiny: threads only wait on each other, worst on a loaded 2-core machine. Training runs
# started as subprocesses pick their own thread count.
torch.set_num_threads(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SHARED = os.path.abspath(os.path.join(ROOT, os.pardir, 'shared'))


def shared_path(*parts):
    """Path under ../shared, or skip the test when that file or folder is absent (a user's clone)."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f'needs ../shared/{"/".join(parts)}')
    return path
