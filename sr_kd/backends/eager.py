"""The eager backend: the PyTorch module itself, channels-last, reduced precision by autocast in ``upscale``."""
import torch

from sr_kd.backends import Runner


def prepare_eager(model, precision):
    model = model.to(memory_format=torch.channels_last)  # oneDNN's preferred layout; equal to NCHW within rounding
    return Runner(fn=model, backend='eager', precision=precision, autocast=precision, eager=True)
