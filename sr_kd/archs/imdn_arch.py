"""IMDN (Hui et al., ACM MM 2019): information multi-distillation blocks with contrast-aware attention.

Parameter names follow the official code (``fea_conv``, ``IMDB1``..``IMDBn``, ``c``, ``LR_conv``,
``upsampler``) so the official checkpoints load with ``strict=True``. Width, depth, distillation rate
and scale are options, so one class builds the 64x6 teacher and the small students.
"""
import dataclasses
import math
import re

import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

from sr_kd.archs.description import ArchSpec, ExactTiling, ModelInfo, register_arch
from sr_kd.errors import SRKDError

_LRELU_SLOPE = 0.05


def _conv(in_ch, out_ch, kernel_size, stride=1):
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=True)


def channel_std(x: torch.Tensor) -> torch.Tensor:
    """Per-channel standard deviation over H, W (population, as the official ``stdv_channels``)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()


class CCA(nn.Module):
    """Contrast-aware channel attention: (std + mean) per channel -> squeeze-excite -> sigmoid gate."""

    def __init__(self, num_feat: int, reduction: int = 16):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(num_feat, max(num_feat // reduction, 1), 1), nn.ReLU(inplace=True),
            nn.Conv2d(max(num_feat // reduction, 1), num_feat, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(channel_std(x) + x.mean(dim=(2, 3), keepdim=True))


class IMDB(nn.Module):
    """Information multi-distillation block: 4 refinement steps, each keeps ``distill_rate`` of the channels."""

    def __init__(self, num_feat: int = 64, distill_rate: float = 0.25):
        super().__init__()
        self.distilled = int(num_feat * distill_rate)
        self.remaining = num_feat - self.distilled
        if self.distilled < 1:
            raise ValueError(f'num_feat={num_feat} with distill_rate={distill_rate} distills no channel')
        self.c1 = _conv(num_feat, num_feat, 3)
        self.c2 = _conv(self.remaining, num_feat, 3)
        self.c3 = _conv(self.remaining, num_feat, 3)
        self.c4 = _conv(self.remaining, self.distilled, 3)
        self.act = nn.LeakyReLU(_LRELU_SLOPE, inplace=True)
        self.c5 = _conv(self.distilled * 4, num_feat, 1)
        self.cca = CCA(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        d4 = self.c4(r3)
        return self.c5(self.cca(torch.cat([d1, d2, d3, d4], dim=1))) + x


class _IMDNBody(nn.Module):
    """Shared trunk: head -> IMDB1..n -> 1x1 fusion (c) -> LR_conv + long skip -> pixel-shuffle upsampler."""

    def __init__(self, head, num_in_ch, num_out_ch, num_feat, num_modules, upscale, distill_rate):
        super().__init__()
        if num_modules < 1 or num_feat < 4 or upscale < 1:
            raise ValueError(f'IMDN needs num_modules >= 1, num_feat >= 4, upscale >= 1; '
                             f'got {num_modules}, {num_feat}, {upscale}')
        self.num_modules = num_modules
        self.upscale = upscale
        self.fea_conv = head
        for i in range(1, num_modules + 1):
            setattr(self, f'IMDB{i}', IMDB(num_feat, distill_rate))
        self.c = nn.Sequential(nn.Conv2d(num_feat * num_modules, num_feat, 1), nn.LeakyReLU(_LRELU_SLOPE, inplace=True))
        self.LR_conv = _conv(num_feat, num_feat, 3)
        self.upsampler = nn.Sequential(_conv(num_feat, num_out_ch * upscale ** 2, 3), nn.PixelShuffle(upscale))

    def forward(self, x):
        fea = self.fea_conv(x)
        outs, out = [], fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f'IMDB{i}')(out)
            outs.append(out)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)


@ARCH_REGISTRY.register()
class IMDN(_IMDNBody):
    """IMDN for a fixed integer scale: input LR, output ``upscale`` times larger."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_modules: int = 6,
                 upscale: int = 4, distill_rate: float = 0.25):
        super().__init__(_conv(num_in_ch, num_feat, 3), num_in_ch, num_out_ch, num_feat, num_modules, upscale,
                         distill_rate)


@ARCH_REGISTRY.register()
class IMDN_AS(_IMDNBody):
    """IMDN for any scale: the input is the LR image already resized to the output size; two stride-2
    convs shrink it by 4 and the x4 upsampler restores it. Sizes must be multiples of 4 (or use the
    adaptive cropping of ``sr_kd.inference``)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_modules: int = 6,
                 upscale: int = 4, distill_rate: float = 0.25):
        head = nn.Sequential(_conv(num_in_ch, num_feat, 3, stride=2), nn.LeakyReLU(_LRELU_SLOPE),
                             _conv(num_feat, num_feat, 3, stride=2))
        super().__init__(head, num_in_ch, num_out_ch, num_feat, num_modules, upscale, distill_rate)


# ----- descriptions (sr_kd.archs.description): how a checkpoint says which IMDN it holds ----------------
def _imdn_options(sd, head_key):
    """num_in_ch, num_out_ch, num_feat, num_modules, upscale, distill_rate from keys and shapes."""
    head = sd[head_key]
    num_feat, num_in = head.shape[0], head.shape[1]
    blocks = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r'IMDB(\d+)\.c1\.weight', k)))
    if not blocks or blocks != list(range(1, len(blocks) + 1)) or 'upsampler.0.weight' not in sd:
        raise SRKDError('IMDN checkpoint is incomplete (IMDB blocks or upsampler missing)')
    up_out = sd['upsampler.0.weight'].shape[0]
    num_out = num_in if up_out % num_in == 0 else 3
    upscale = int(round(math.sqrt(up_out / num_out)))
    if num_out * upscale ** 2 != up_out:
        raise SRKDError(f'cannot infer the scale from upsampler.0.weight with {up_out} output channels')
    return {'num_in_ch': int(num_in), 'num_out_ch': int(num_out), 'num_feat': int(num_feat),
            'num_modules': len(blocks), 'upscale': upscale,
            'distill_rate': sd['IMDB1.c4.weight'].shape[0] / num_feat}


# CCA pools (std + mean) over the whole feature map: tiles see other statistics unless they are given
# the whole image's (sr_kd.inference's exact tiles).
CCA_EXACT = ExactTiling(
    modules=lambda model: [m for m in model.modules() if isinstance(m, CCA)],
    pool=lambda s1, s2, n: (s2 / n - (s1 / n) ** 2).clamp_min(0).sqrt() + s1 / n,
    apply=lambda module, x, pooled: x * module.conv_du(pooled.to(x.dtype)))


def _info(name, opts, **kw):
    return ModelInfo(arch=name, scale=opts['upscale'], in_channels=opts['num_in_ch'], out_channels=opts['num_out_ch'],
                     global_stats=True, exact=CCA_EXACT, network_opt={'type': name, **opts},
                     tags=(f'{opts["num_feat"]}x{opts["num_modules"]}',), **kw)


register_arch(ArchSpec('IMDN', detect=lambda sd: 'fea_conv.weight' in sd and 'IMDB1.c1.weight' in sd,
                       options=lambda sd: _imdn_options(sd, 'fea_conv.weight'),
                       info=lambda opts: _info('IMDN', opts)))
# IMDN_AS keeps the size of its input (the LR resized to the output size); sides are multiples of 4
# (two stride-2 convs), met by its adaptive cropping. Its attention pools at a quarter of the input,
# so exact tiles do not apply.
register_arch(ArchSpec('IMDN_AS', detect=lambda sd: 'fea_conv.0.weight' in sd and 'IMDB1.c1.weight' in sd,
                       options=lambda sd: _imdn_options(sd, 'fea_conv.0.weight'),
                       info=lambda opts: dataclasses.replace(
                           _info('IMDN_AS', opts, size_multiple=4, resizes_input=True), exact=None)))
