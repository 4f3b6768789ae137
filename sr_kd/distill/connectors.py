"""Learned adapters that map student features to the teacher's width (or back), for losses that compare
features channel by channel. Built from shapes, trained with the student, saved in the checkpoint."""
from torch import nn


def conv1x1(in_ch: int, out_ch: int, bn: bool = False) -> nn.Module:
    """A 1x1 convolution (FitNet's regressor); with ``bn`` a BatchNorm after it (as OFD's connector)."""
    layers = [nn.Conv2d(in_ch, out_ch, 1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers) if bn else layers[0]


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """A 3x3 convolution, for connectors that should see a neighbourhood."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)
