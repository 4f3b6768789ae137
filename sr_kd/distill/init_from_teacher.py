"""A student initialised from its teacher where the families match: channel and layer selection.

For a Compact (SRVGGNetCompact) teacher and a narrower, shallower Compact student: the same set of the
teacher's feature channels in every layer (those whose filters carry the most weight, summed over the
layers) and evenly spaced body convolutions, first and last kept; the first convolution's input and the
last one's output (the pixel-shuffle channels) stay whole. The student then starts from a thinned copy
of its teacher's mapping instead of noise (in the spirit of structured pruning as initialisation).
"""
from typing import Dict, List

import torch

from sr_kd.errors import SRKDError


def compact_layers(sd: Dict[str, torch.Tensor], where: str) -> List[int]:
    """The body indices of the convolutions of a Compact state dict; one line if it is not one."""
    convs = sorted({int(k.split('.')[1]) for k in sd if k.startswith('body.') and k.endswith('.weight')
                    and sd[k].dim() == 4})
    if not convs or any(f'body.{i + 1}.weight' not in sd for i in convs[:-1]):
        raise SRKDError(f'{where} is not a Compact network (body of conv + PReLU layers)')
    return convs


def compact_from_compact(teacher_sd: Dict[str, torch.Tensor], student_sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The student's state dict with every tensor taken from the teacher's by channel and layer selection."""
    t_convs, s_convs = compact_layers(teacher_sd, 'the teacher'), compact_layers(student_sd, 'the student')
    width_t, width_s = teacher_sd['body.0.weight'].shape[0], student_sd['body.0.weight'].shape[0]
    if width_s > width_t or len(s_convs) > len(t_convs):
        raise SRKDError(f'a student wider or deeper than its teacher cannot be cut from it ({width_s} > {width_t} '
                        f'channels or {len(s_convs)} > {len(t_convs)} convolutions)')
    if student_sd[f'body.{s_convs[-1]}.weight'].shape[0] != teacher_sd[f'body.{t_convs[-1]}.weight'].shape[0]:
        raise SRKDError('the teacher and the student upscale by different factors')
    weight = sum(teacher_sd[f'body.{i}.weight'].flatten(1).norm(dim=1) for i in t_convs[:-1])
    keep = weight.topk(width_s).indices.sort().values
    picked = torch.linspace(0, len(t_convs) - 2, len(s_convs) - 1).round().long().tolist() + [len(t_convs) - 1]
    out = {}
    for n, (si, ti) in enumerate(zip(s_convs, [t_convs[p] for p in picked])):
        w, b = teacher_sd[f'body.{ti}.weight'], teacher_sd[f'body.{ti}.bias']
        last = n == len(s_convs) - 1
        if n:  # inputs: the kept channels (the first conv reads the image)
            w = w[:, keep]
        if not last:
            w, b = w[keep], b[keep]
            out[f'body.{si + 1}.weight'] = teacher_sd[f'body.{ti + 1}.weight'][keep].clone()
        out[f'body.{si}.weight'], out[f'body.{si}.bias'] = w.clone(), b.clone()
    missing = set(student_sd) - set(out)
    if missing or any(out[k].shape != student_sd[k].shape for k in out):
        raise SRKDError('the student\'s layers do not match the teacher\'s Compact layout')
    return out
