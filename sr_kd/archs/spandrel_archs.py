"""The upscaling ecosystem's architectures, through spandrel (MIT; what chaiNNer and ComfyUI load with).

Two jobs:
- Students: spandrel's own SPAN, Compact (Real-ESRGAN's SRVGGNetCompact) and PLKSR classes registered in
  BasicSR's ARCH_REGISTRY under spandrel's names, so a trained student's state dict is what spandrel
  loads, unchanged. (BasicSR's own copy of Compact is registered as 'SRVGGNetCompact_basicsr'.)
- Any model spandrel recognises (ESRGAN/RRDB, Compact, SwinIR, HAT, DAT, SPAN, OmniSR, PLKSR, ...): a
  description (``ModelInfo``) from spandrel's ``ImageModelDescriptor``, registered last, after sr_kd's own.

spandrel is optional at import: without it sr_kd's own archs work and these say how to install it.
"""
from types import ModuleType
from typing import TYPE_CHECKING, Dict, Sequence, Tuple

from basicsr.utils.registry import ARCH_REGISTRY

from sr_kd.archs.description import ArchSpec, ModelInfo, register_arch
from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    import spandrel
    import torch

INSTALL_HINT = 'spandrel is not installed (bash scripts/install.sh installs it)'


def spandrel_module() -> ModuleType:
    """``import spandrel``, or one line saying how to get it."""
    try:
        import spandrel
    except ImportError as e:
        if e.name == 'spandrel':
            raise SRKDError(f'this needs spandrel: {INSTALL_HINT}') from e
        raise SRKDError(f'spandrel is installed but does not import: {e}') from e
    return spandrel


# ----- students (papers' small configurations as defaults; docs/students.md) --------------------------
@ARCH_REGISTRY.register()
def SPAN(num_in_ch: int = 3, num_out_ch: int = 3, feature_channels: int = 48, upscale: int = 4, bias: bool = True,
         norm: bool = True, img_range: float = 255.0,
         rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040)) -> 'torch.nn.Module':
    """SPAN (Wan et al., NTIRE 2024 efficient SR winner): 6 parameter-free-attention blocks of width 48
    (426,288 parameters once its training branches are folded; width 28: 150,688)."""
    spandrel_module()
    from spandrel.architectures.SPAN import SPAN as _SPAN
    return _SPAN(num_in_ch=num_in_ch, num_out_ch=num_out_ch, feature_channels=feature_channels, upscale=upscale,
                 bias=bias, norm=norm, img_range=img_range, rgb_mean=tuple(rgb_mean))


@ARCH_REGISTRY.register()
def Compact(num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16, upscale: int = 4,
            act_type: str = 'prelu') -> 'torch.nn.Module':
    """Real-ESRGAN's SRVGGNetCompact: plain 3x3 convs + PReLU at LR, pixel shuffle, plus the nearest
    upsampled input. 64 x 16 is realesr-animevideov3, 64 x 32 realesr-general-x4v3."""
    spandrel_module()
    from spandrel.architectures.Compact import Compact as _Compact
    return _Compact(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat, num_conv=num_conv, upscale=upscale,
                    act_type=act_type)


@ARCH_REGISTRY.register()
def PLKSR(dim: int = 64, n_blocks: int = 12, upscale: int = 4, ccm_type: str = 'CCM', kernel_size: int = 13,
          split_ratio: float = 0.25, lk_type: str = 'PLK', use_ea: bool = False) -> 'torch.nn.Module':
    """PLKSR (Lee et al. 2024, partial large kernels): defaults are the tiny configuration neosr ships as
    plksr_tiny (64 x 12, kernel 13, no element-wise attention); the full one is n_blocks 28, kernel_size 17,
    use_ea true. RGB only."""
    spandrel_module()
    from spandrel.architectures.PLKSR import PLKSR as _PLKSR
    return _PLKSR(dim=dim, n_blocks=n_blocks, upscaling_factor=upscale, ccm_type=ccm_type, kernel_size=kernel_size,
                  split_ratio=split_ratio, lk_type=lk_type, use_ea=use_ea)


def _span_opts(hp):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}


def _plksr_opts(hp):
    keep = ('dim', 'n_blocks', 'ccm_type', 'kernel_size', 'split_ratio', 'lk_type', 'use_ea')
    return {**{k: hp[k] for k in keep if k in hp}, 'upscale': hp['upscaling_factor']}


def _compact_opts(hp):
    return {k: hp[k] for k in ('num_in_ch', 'num_out_ch', 'num_feat', 'num_conv', 'upscale', 'act_type') if k in hp}


# spandrel arch id -> (ARCH_REGISTRY name, spandrel hyperparameters -> that name's options)
STUDENTS = {'SPAN': ('SPAN', _span_opts), 'PLKSR': ('PLKSR', _plksr_opts), 'Compact': ('Compact', _compact_opts)}


def _fold_span(model):
    """SPAN re-computes each Conv3XC's folded 3x3 conv from its training branches on every eval forward
    (assigning weights inside forward, which export and compile refuse): fold once, then run the folded
    conv. Only for loaded (inference) models; a student in training keeps its branches."""
    for m in model.modules():  # SPAN's Conv3XC, known by what it has (its class is private to spandrel)
        if callable(getattr(m, 'update_params', None)) and hasattr(m, 'eval_conv'):
            m.update_params()
            m.update_params = lambda: None
    return model


# spandrel arch id -> what a loaded model needs once before inference
DEPLOY = {'SPAN': _fold_span}


def info_from_descriptor(desc: 'spandrel.ImageModelDescriptor') -> ModelInfo:
    """ModelInfo of a spandrel ``ImageModelDescriptor``: its own scale, channels, size requirement and tiling
    advice (DISCOURAGED/INTERNAL: whole-image information, plain tiles inexact, no exact tiles)."""
    from spandrel import ModelTiling
    arch = desc.architecture.id
    network_opt = None
    if arch in STUDENTS and getattr(desc.model, 'hyperparameters', None) is not None:
        name, to_opts = STUDENTS[arch]
        network_opt = {'type': name, **to_opts(dict(desc.model.hyperparameters))}
    return ModelInfo(arch=arch, scale=desc.scale, in_channels=desc.input_channels,
                     out_channels=desc.output_channels, size_multiple=desc.size_requirements.multiple_of,
                     global_stats=desc.tiling is not ModelTiling.SUPPORTED, network_opt=network_opt,
                     source='spandrel', tags=tuple(desc.tags))


def _detect(sd):
    try:
        spandrel = spandrel_module()
    except SRKDError:
        if _installed():
            raise
        return False  # without spandrel only sr_kd's own archs are known; the error for an unknown one says so
    return any(a.detect(sd) for a in spandrel.MAIN_REGISTRY.architectures())


def _installed():
    import importlib.util
    return importlib.util.find_spec('spandrel') is not None


class SpandrelSpec(ArchSpec):
    """Every architecture spandrel knows, detected and built by spandrel's own registry."""

    def load(self, sd: Dict[str, 'torch.Tensor'], path: str = 'checkpoint') -> Tuple['torch.nn.Module', ModelInfo]:
        spandrel = spandrel_module()
        sd = spandrel.canonicalize_state_dict(dict(sd))  # spandrel's public names only
        try:
            desc = spandrel.MAIN_REGISTRY.load(sd)
        except spandrel.UnsupportedModelError as e:
            raise SRKDError(f'{path}: spandrel does not recognise this model') from e
        except Exception as e:  # noqa: BLE001 - a detected arch whose weights do not fit: one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SRKDError(f'{path}: spandrel took it for an architecture it could not load: {msg[:200]}') from e
        if not isinstance(desc, spandrel.ImageModelDescriptor):
            raise SRKDError(f'{path} is a {desc.architecture.id} {desc.purpose} model (masked input), '
                            'not an image-to-image model')
        model = desc.model.eval()
        return DEPLOY.get(desc.architecture.id, lambda m: m)(model), info_from_descriptor(desc)


register_arch(SpandrelSpec('spandrel', detect=_detect, options=None, info=None))


def spandrel_loads(path: str) -> 'spandrel.ModelDescriptor':
    """What spandrel's own loader makes of a file (``ModelLoader().load_from_file``): the check that a
    student drops into chaiNNer or ComfyUI unchanged."""
    spandrel = spandrel_module()
    return spandrel.ModelLoader().load_from_file(path)
