"""Shared test helpers: where ../shared is (tests that need it skip when it is absent) and tiny models."""
import os

import pytest
import torch

import sr_kd  # noqa: F401 - compat + registries for every test

torch.set_num_threads(min(2, torch.get_num_threads()))

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SHARED = os.path.abspath(os.path.join(ROOT, os.pardir, 'shared'))


def shared_path(*parts):
    """Path under ../shared, or skip the test when that file or folder is absent (a user's clone)."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f'needs ../shared/{"/".join(parts)}')
    return path
