"""The eager backend: the PyTorch module itself, channels-last, reduced precision by autocast in ``upscale``."""
import torch

from sr_kd.backends.base import Backend, Runner


def prepare_eager(model, info, precision, options, exact_tiles=False):
    model = model.to(memory_format=torch.channels_last)  # oneDNN's preferred layout; equal to NCHW within rounding
    return Runner(fn=model, backend='eager', precision=precision, autocast=precision, eager=True)


BACKEND = Backend('eager', ('fp32', 'bf16', 'fp16'), 'eager (PyTorch)', prepare_eager, cpu_only=False)
