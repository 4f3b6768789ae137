"""Real-ESRGAN's Compact (spandrel's SRVGGNetCompact) for inference, with its tail fused into one pass.

Compact ends with ``pixel_shuffle(y) + nearest_upsample(x)``: three passes over the HR image (the shuffle,
the upsample, the add), and on channels-last tensors both the shuffle and a 3-channel upsample are slow in
PyTorch. On a 2-core CPU at 481x321 they cost 18 ms in fp32 and 25 ms in bf16 (one add writing the HR
image from the LR tensors: 5 and 8 ms). With PyTorch's bf16 PReLU kernel at 16 channels (``_prelu``) they
were most of a compact-16x4 student's whole-image time, and decided whether it is 8x faster than its
teacher (docs/distill.md). Nothing maintained does this; spandrel's module is kept as it is (its state
dict, training, export) and only the eager backend runs this form. In fp32 the output is bit-identical
(the same two numbers are added); under bf16 autocast the tail's sum is kept in fp32 instead of being
rounded to bf16.
"""
import torch


def shuffle_add(y: torch.Tensor, x: torch.Tensor, r: int) -> torch.Tensor:
    """``pixel_shuffle(y, r) + interpolate(x, scale_factor=r, mode='nearest')`` in one pass: y is N x C*r*r
    x H x W, x is N x C x H x W; the result (N x C x rH x rW, contiguous) has their promoted dtype."""
    n, c, h, w = x.shape
    z = y.permute(0, 2, 3, 1).reshape(n, h, w, c, r, r)  # a view for channels-last y
    out = torch.empty(n, c, h, r, w, r, dtype=torch.result_type(y, x), device=y.device)
    torch.add(z.permute(0, 3, 1, 4, 2, 5), x[:, :, :, None, :, None], out=out)
    return out.view(n, c, h * r, w * r)


def _prelu(layer: torch.nn.PReLU, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``; for a bf16/fp16 CPU tensor whose channels are not a multiple of 32, as
    ``max(x, 0) + w * min(x, 0)``: the same numbers, but there PyTorch's PReLU kernel is slow (16 channels
    at 481x321, bf16, 2 threads: 8.0 ms against 1.0; at 32 and 64 channels the kernel is the faster, 0.7
    against 1.9 ms)."""
    c = x.shape[1]
    if x.dtype not in (torch.bfloat16, torch.float16) or x.device.type != 'cpu' or c % 32 == 0 \
            or layer.weight.numel() != c:
        return layer(x)
    return x.clamp_min(0) + x.clamp_max(0) * layer.weight.to(x.dtype).view(1, c, 1, 1)


class FusedCompact(torch.nn.Module):
    """A Compact's body (the same modules, so the same state dict keys) with the fused tail."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.body, self.upscale = net.body, net.upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = _prelu(layer, out) if isinstance(layer, torch.nn.PReLU) else layer(out)
        if (torch.is_grad_enabled() and out.requires_grad) or torch.compiler.is_compiling():
            # out= records no gradient, and torch.compile fuses the plain tail itself (it lays out= differently)
            return torch.nn.functional.pixel_shuffle(out, self.upscale) + torch.nn.functional.interpolate(
                x, scale_factor=self.upscale, mode='nearest')
        return shuffle_add(out, x, self.upscale)


def fused(model: torch.nn.Module) -> torch.nn.Module:
    """``FusedCompact`` of a spandrel Compact with as many input as output channels; any other model as it is."""
    if type(model).__name__ != 'SRVGGNetCompact' or not hasattr(model, 'body'):
        return model
    if model.num_in_ch != model.num_out_ch:
        return model
    return FusedCompact(model)
