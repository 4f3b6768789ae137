"""A model from a weights file, whatever its architecture: the one loader of every command and of
``network_t: {type: auto}`` teachers.

``.pth``/``.pt``/``.ckpt`` files are read with ``weights_only=True`` (sr_kd.checkpoint), ``.safetensors``
with safetensors. The architecture is found by the registered descriptions (sr_kd.archs.description):
sr_kd's own first (IMDN, IMDN_AS), then everything spandrel recognises. A wrong file fails in one line
naming what was found.
"""
import os
from typing import TYPE_CHECKING, Dict, Optional, Tuple, Union

from sr_kd.archs.description import ARCHS, ModelInfo, find_arch
from sr_kd.checkpoint import check_not_a_stand_in, extract_state_dict, load_checkpoint
from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    import torch


def read_state_dict(path: str, param_key: Optional[str] = None) -> Dict[str, 'torch.Tensor']:
    """The state dict of a weights file (.pth, .pt, .ckpt, .safetensors)."""
    if path.lower().endswith('.safetensors'):
        if not os.path.isfile(path):
            raise SRKDError(f'checkpoint not found: {path}')
        check_not_a_stand_in(path)
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise SRKDError(f'{path}: reading .safetensors needs the safetensors package') from e
        try:
            ckpt = load_file(path, device='cpu')
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file: one line
            raise SRKDError(f'cannot read {path}: not a safetensors file, or a damaged one ({type(e).__name__})') from e
    else:
        ckpt = load_checkpoint(path)
    try:
        sd = extract_state_dict(ckpt, param_key)
    except SRKDError as e:
        found = (f'a dict with keys {", ".join(map(str, list(ckpt)[:5]))}' if isinstance(ckpt, dict)
                 else f'a {type(ckpt).__name__}')
        raise SRKDError(f'{path} is not a model: {e} (found {found})') from e
    # weights stored as integers (a quantised export) would be cast to float as they are: a black image
    ints = [k for k, v in sd.items() if str(k).rsplit('.', 1)[-1] in ('weight', 'bias')
            and hasattr(v, 'is_floating_point') and not v.is_floating_point()]
    if ints:
        raise SRKDError(f'{path} stores its weights as {sd[ints[0]].dtype} ({ints[0]}, ...), not as floats: '
                        'a quantised model sr_kd cannot run; use the float original')
    return sd


def _unknown(path, sd):
    keys = list(sd)
    shapes = ', '.join(f'{k} {tuple(sd[k].shape)}' for k in keys[:3])
    mine = ', '.join(n for n in ARCHS if n != 'spandrel')
    try:
        import spandrel
        others = f'nor any of the {len(spandrel.MAIN_REGISTRY.architectures())} architectures spandrel knows'
    except ImportError:
        from sr_kd.archs.spandrel_archs import INSTALL_HINT
        others = f'and {INSTALL_HINT} for the ecosystem\'s architectures'
    return SRKDError(f'{path}: unknown architecture: {len(keys)} tensors ({shapes}, ...) match neither {mine} '
                     f'{others}')


def load_state_dict_model(sd: Dict[str, 'torch.Tensor'],
                          path: str = 'checkpoint') -> Tuple['torch.nn.Module', ModelInfo]:
    """(model in eval mode, ModelInfo) for a state dict."""
    spec = find_arch(sd)
    if spec is None:
        raise _unknown(path, sd)
    return spec.load(sd, path)


def load_model(path: str, param_key: Optional[str] = None, device: Union[str, 'torch.device'] = 'cpu',
               expect_scale: Optional[int] = None) -> Tuple['torch.nn.Module', ModelInfo]:
    """Build the network a weights file holds, load it strictly: (model in eval mode on ``device``, ModelInfo).
    ``expect_scale``: refuse a model of another scale (models that take a resized input take any scale)."""
    model, info = load_state_dict_model(read_state_dict(path, param_key), path)
    if expect_scale is not None and not info.resizes_input and info.scale != expect_scale:
        raise SRKDError(f'{path} is a x{info.scale} model ({info.label}), but scale {expect_scale} was asked for')
    return model.to(device), info


def describe(net: 'torch.nn.Module') -> ModelInfo:
    """ModelInfo of a network in memory (a student being trained, a test's model), from its state dict."""
    sd = {k: v for k, v in net.state_dict().items()}
    spec = find_arch(sd)
    if spec is None:
        raise _unknown(type(net).__name__, sd)
    if spec.options is None:  # described by loading (spandrel): load a copy
        return spec.load(sd)[1]
    return spec.info(spec.options(sd))


# ----- teachers from a weights file: network_t: {type: auto} ----------------------------------------------
AUTO = 'auto'


def is_auto(net_opt: object) -> bool:
    """True for ``network_t: {type: auto}``: the architecture and scale come from the weights file."""
    return isinstance(net_opt, dict) and net_opt.get('type') == AUTO


def load_teacher(opt: dict, device: Union[str, 'torch.device'] = 'cpu') -> Tuple['torch.nn.Module', ModelInfo]:
    """(frozen teacher in eval mode on ``device``, ModelInfo) for ``network_t: {type: auto}``: whatever
    ``path.pretrain_network_t`` holds that sr_kd or spandrel recognises (``param_key_t``: default the
    file's params_ema/params/plain dict). Its scale must be the student's."""
    extra = sorted(set(opt['network_t']) - {'type'})
    if extra:
        raise SRKDError('network_t: {type: auto} reads its settings from the weights file; '
                        f'remove {", ".join(extra)}')
    path_opt = opt.get('path') or {}
    path = path_opt.get('pretrain_network_t')
    if not path:
        raise SRKDError('network_t: {type: auto} loads path.pretrain_network_t, which is missing')
    net, info = load_model(path, path_opt.get('param_key_t'))
    if info.resizes_input:
        raise SRKDError(f'teacher {path} is {info.label}, which takes a resized input; it cannot teach a student')
    want = (opt.get('network_g') or {}).get('upscale', opt.get('scale'))
    if want is not None and info.scale != want:
        raise SRKDError(f'teacher {path} is a x{info.scale} model ({info.label}, found by {info.source}), '
                        f'but the student is x{want}')
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, info


def inference_parameters(model: 'torch.nn.Module', info: ModelInfo, size: int = 16) -> int:
    """Parameters of the modules an eval-mode forward calls: SPAN's training branches, folded into one conv
    per layer for inference, do not count (as the NTIRE efficient-SR tables count them)."""
    import torch
    called = set()
    handles = [m.register_forward_pre_hook(lambda m, a: called.add(m)) for m in model.modules()]
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.rand(1, info.in_channels, size * info.size_multiple, size * info.size_multiple, device=device))
    finally:
        for h in handles:
            h.remove()
    return sum(p.numel() for m in called for p in m.parameters(recurse=False))
