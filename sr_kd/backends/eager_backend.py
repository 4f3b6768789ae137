"""The eager backend: the PyTorch module itself (a Compact with its tail fused, ``sr_kd.archs.compact_fused``),
channels-last, reduced precision by autocast in ``upscale``."""
from typing import TYPE_CHECKING

import torch

from sr_kd.backends.base import Backend, Options, Runner

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo


def prepare_eager(model: torch.nn.Module, info: 'ModelInfo', precision: str, options: Options,
                  exact_tiles: bool = False) -> Runner:
    from sr_kd.archs.compact_fused import fused
    # channels-last: oneDNN's preferred layout; equal to NCHW within rounding
    model = fused(model).to(memory_format=torch.channels_last)
    return Runner(fn=model, backend='eager', precision=precision, autocast=precision, eager=True)


BACKEND = Backend('eager', ('fp32', 'bf16', 'fp16'), 'eager (PyTorch)', prepare_eager, cpu_only=False)
