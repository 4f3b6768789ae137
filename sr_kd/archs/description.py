"""One description per architecture, and what a loaded model is: the only place the commands ask about archs.

An architecture registers an ``ArchSpec`` beside its code (``register_arch``): how to recognise its state
dict, how to read its network options from it, and the facts inference needs (input size multiple,
whole-image statistics, a way to make tiles exact, an input already resized to the output size).
Loading a file gives a ``ModelInfo``: that spec's facts for one model (scale, channels, options).
``upscale``, ``eval``, ``export``, ``report``, ``inspect`` and validation read only ``ModelInfo``, so adding
an arch touches the arch's own file. spandrel's ``ImageModelDescriptor``/``SizeRequirements`` is the model.
"""
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ExactTiling:
    """How whole-image statistics are pooled, so tiles can be made exact (``sr_kd.inference``): the modules
    that pool (``modules(model)``), the pooled value from per-channel moments over the whole image
    (``pool(sum, sum of squares, count)``), and the module's output given a pooled value
    (``apply(module, x, pooled)``)."""
    modules: Callable
    pool: Callable
    apply: Callable


@dataclass(frozen=True)
class ModelInfo:
    """What one loaded model is: enough for every command to run it without asking about its arch."""
    arch: str                       # 'IMDN', 'SPAN', 'ESRGAN', ...
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    size_multiple: int = 1          # input height and width must be multiples of this (padded otherwise)
    global_stats: bool = False      # whole-image statistics (pooling): plain tiles differ from the whole image
    exact: Optional[ExactTiling] = None   # how tiles are made exact despite global_stats (None: they cannot)
    resizes_input: bool = False     # IMDN_AS: the input is the LR already resized to the output size
    network_opt: Optional[dict] = None    # {'type': ..., ...}: BasicSR's build_network rebuilds it
    source: str = 'sr_kd'           # 'sr_kd' (own detection) or 'spandrel'
    tags: tuple = field(default=())

    @property
    def label(self) -> str:
        """'IMDN 64x6 x4', 'SPAN 48nf x4': what was found, in one short phrase."""
        return ' '.join([self.arch, *self.tags, f'x{self.scale}'])

    @property
    def tiles_exact(self) -> bool:
        """Plain tiles equal the whole image once the pad covers the receptive field."""
        return not self.global_stats


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: ``detect(sd)`` says whether a state dict holds it, ``options(sd)`` reads the
    network options (ARCH_REGISTRY kwargs) from it, ``info(options)`` says what such a model is."""
    name: str
    detect: Callable
    options: Callable
    info: Callable
    build: Optional[Callable] = None  # options -> nn.Module; default: BasicSR's ARCH_REGISTRY by name

    def load(self, sd: Dict[str, 'torch.Tensor'], path: str = 'checkpoint') -> Tuple['torch.nn.Module', ModelInfo]:
        """(model with ``sd`` loaded strictly, eval mode; its ModelInfo)."""
        from basicsr.utils.registry import ARCH_REGISTRY

        from sr_kd.errors import SRKDError
        try:  # a damaged or edited file reads as impossible options or shapes: one line, not a traceback
            opts = self.options(sd)
            net = self.build(opts) if self.build else ARCH_REGISTRY.get(self.name)(**opts)
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SRKDError(f'{path} looks like {self.name} but its tensors do not fit one: {msg}') from e
        from sr_kd.checkpoint import check_fits
        check_fits(net, sd, True, f'{path} does not match {self.name}')
        net.load_state_dict(sd, strict=True)
        return net.eval(), self.info(opts)


ARCHS = {}


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Add an architecture's description; detection tries them in registration order."""
    if spec.name in ARCHS:
        raise ValueError(f'architecture {spec.name!r} is described twice')
    ARCHS[spec.name] = spec
    return spec


def find_arch(sd: Dict[str, 'torch.Tensor']) -> Optional[ArchSpec]:
    """The registered spec whose ``detect`` accepts ``sd``, or None."""
    return next((spec for spec in ARCHS.values() if spec.detect(sd)), None)


def spec_of(name: str) -> ArchSpec:
    if name not in ARCHS:
        raise SRKDError(f'no description for architecture {name!r}')
    return ARCHS[name]
