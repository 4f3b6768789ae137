"""The eager backend: the PyTorch module itself, channels-last, reduced precision by autocast in ``upscale``."""
from typing import TYPE_CHECKING

import torch

from sr_kd.backends.base import Backend, Options, Runner

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo


def prepare_eager(model: torch.nn.Module, info: 'ModelInfo', precision: str, options: Options,
                  exact_tiles: bool = False) -> Runner:
    model = model.to(memory_format=torch.channels_last)  # oneDNN's preferred layout; equal to NCHW within rounding
    return Runner(fn=model, backend='eager', precision=precision, autocast=precision, eager=True)


BACKEND = Backend('eager', ('fp32', 'bf16', 'fp16'), 'eager (PyTorch)', prepare_eager, cpu_only=False)
