"""The frozen teacher: built and loaded from the option file, and run at the precision the machine does best.

One place for both, so training (online teacher), the offline teacher cache (``sr-kd cache-teacher``) and
the step benchmark load and run the same teacher the same way.
"""
import torch

from basicsr.archs import build_network
from basicsr.utils import get_root_logger

from sr_kd.checkpoint import check_fits, extract_state_dict, load_checkpoint
from sr_kd.errors import SRKDError
from sr_kd.hardware import bf16_is_native
from sr_kd.rules import check_teacher_scale, teacher_path

TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16')


def teacher_dtype(opt, device):
    """torch.bfloat16 or None (fp32) for ``distill.teacher_precision`` (auto | fp32 | bf16)."""
    choice = str((opt.get('distill') or {}).get('teacher_precision', 'auto'))
    if choice not in TEACHER_PRECISIONS:
        raise SRKDError(f'distill.teacher_precision must be one of {", ".join(TEACHER_PRECISIONS)}, not {choice!r}')
    if choice == 'fp32':
        return None
    if choice == 'bf16':
        return torch.bfloat16
    return torch.bfloat16 if bf16_is_native(device) else None


def run_teacher(net, x, dtype):
    """Teacher forward under no_grad, autocast to ``dtype`` when one is given; the output in fp32."""
    with torch.no_grad(), torch.autocast(x.device.type, dtype or torch.bfloat16, enabled=dtype is not None):
        return net(x).float()


def build_teacher(opt, device):
    """The teacher of ``network_t`` with the weights of ``path.pretrain_network_t`` (``param_key_t``,
    ``strict_load_t``): eval mode, no gradients, on ``device``; its scale must equal the student's."""
    if 'network_t' not in opt:
        raise SRKDError('SRKDModel needs a network_t (the teacher) in the option file')
    path_opt = opt['path']
    load_path = teacher_path(opt)  # one owner with the start-up check (sr_kd.rules)
    # --- issue 12: network_t: {type: auto}, the arch and scale from the file (sr_kd.archs.loading) ---
    from sr_kd.archs.loading import is_auto, load_teacher
    if is_auto(opt['network_t']):
        net, info = load_teacher(opt, device)
        get_root_logger().info(f'Teacher {info.label} (found by {info.source}) loaded from {load_path} (frozen).')
        return net
    # ---
    try:
        net = build_network(opt['network_t'])
    except TypeError as e:
        raise SRKDError(f'network_t: {e}') from e
    sd = extract_state_dict(load_checkpoint(load_path), path_opt.get('param_key_t', 'params'))
    strict = path_opt.get('strict_load_t', True)
    check_fits(net, sd, strict, f'teacher checkpoint {load_path} does not fit network_t ({opt["network_t"]["type"]})')
    net.load_state_dict(sd, strict=strict)
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    s_up = opt['network_g'].get('upscale', opt.get('scale'))
    t_up = opt['network_t'].get('upscale', opt.get('scale'))
    check_teacher_scale(t_up, s_up)
    get_root_logger().info(f'Teacher {opt["network_t"]["type"]} loaded from {load_path} (frozen).')
    return net
