"""Read a network's architecture and settings from a checkpoint's keys and shapes.

Lets ``sr-kd eval``/``upscale``/``export`` take any IMDN-family checkpoint (official DataParallel
files, BasicSR ``params``/``params_ema`` files) without the user restating num_feat, depth or scale.
"""
import math
import re

from sr_kd.checkpoint import extract_state_dict, load_checkpoint
from sr_kd.errors import SRKDError


def detect_arch(sd):
    """{'type': 'IMDN'|'IMDN_AS', num_in_ch, num_out_ch, num_feat, num_modules, upscale, distill_rate}."""
    if 'fea_conv.weight' in sd:
        arch, head = 'IMDN', sd['fea_conv.weight']
    elif 'fea_conv.0.weight' in sd:
        arch, head = 'IMDN_AS', sd['fea_conv.0.weight']
    else:
        some = ', '.join(list(sd)[:4])
        raise SRKDError(f'not an IMDN checkpoint (no fea_conv weights; keys start with: {some})')
    num_feat, num_in = head.shape[0], head.shape[1]
    blocks = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r'IMDB(\d+)\.c1\.weight', k)))
    if not blocks or blocks != list(range(1, len(blocks) + 1)) or 'upsampler.0.weight' not in sd:
        raise SRKDError('IMDN checkpoint is incomplete (IMDB blocks or upsampler missing)')
    up_out = sd['upsampler.0.weight'].shape[0]
    num_out = num_in if up_out % num_in == 0 else 3
    upscale = int(round(math.sqrt(up_out / num_out)))
    if num_out * upscale ** 2 != up_out:
        raise SRKDError(f'cannot infer the scale from upsampler.0.weight with {up_out} output channels')
    distilled = sd['IMDB1.c4.weight'].shape[0]
    return {'type': arch, 'num_in_ch': int(num_in), 'num_out_ch': int(num_out), 'num_feat': int(num_feat),
            'num_modules': len(blocks), 'upscale': upscale, 'distill_rate': distilled / num_feat}


def load_model(path, param_key=None, device='cpu', expect_scale=None):
    """Build the network a checkpoint holds, load it strictly, and return (model in eval mode, arch opt)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    sd = extract_state_dict(load_checkpoint(path), param_key)
    opt = detect_arch(sd)
    if expect_scale is not None and opt['type'] == 'IMDN' and opt['upscale'] != expect_scale:
        raise SRKDError(f'{path} is a x{opt["upscale"]} model, but scale {expect_scale} was asked for')
    kwargs = {k: v for k, v in opt.items() if k != 'type'}
    net = ARCH_REGISTRY.get(opt['type'])(**kwargs)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    bad_shapes = [k for k, v in net.state_dict().items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or bad_shapes:
        raise SRKDError(f'{path} does not match {opt["type"]}: missing {missing[:3]}, unexpected {unexpected[:3]}')
    return net.to(device).eval(), opt
