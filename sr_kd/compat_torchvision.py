"""Repair that keeps results identical: the torchvision names basicsr 1.4.2 imports, for machines where no
working torchvision exists (there is no CPU torchvision for torch 2.13; a CUDA one fails at import).

basicsr imports torchvision in data, utils and archs; this gives it the few functions it calls, computed
as torchvision computes them (``make_grid``, ``normalize``, ``rgb_to_grayscale``), and one clear error
for what needs the real thing (VGG perceptual loss, FID, deformable convolution). With a working
torchvision only ``transforms.functional_tensor`` (removed in torchvision 0.17) is aliased.

Imports nothing from sr_kd, so a plain-BasicSR baseline can load this file alone (tests do).
"""
import enum
import importlib
import importlib.machinery
import sys
import types
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:
    import torch

# basicsr's arch_util picks its deformable-convolution branch by this version: >= 0.9.0 calls
# torchvision.ops.deform_conv2d, which here raises the clear error below (an older version string sent
# basicsr to its own uncompiled CUDA extension instead).
STANDIN_VERSION = '0.21.0+sr_kd_standin'


def torchvision_works() -> bool:
    """True when the installed torchvision imports (then it is used as it is)."""
    try:
        import torchvision  # noqa: F401
        import torchvision.utils  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 - missing or broken (CUDA-only) torchvision: use the stand-in
        for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        return False


def _unavailable(what):
    def fail(*args, **kwargs):
        raise RuntimeError(f'{what} needs a working torchvision, which is not installed '
                           '(sr_kd does not use it; install a torchvision that matches your torch)')
    return fail


def make_grid(tensor: Union['torch.Tensor', Sequence['torch.Tensor']], nrow: int = 8, padding: int = 2,
              normalize: bool = False, value_range: Optional[Tuple[float, float]] = None, scale_each: bool = False,
              pad_value: float = 0.0) -> 'torch.Tensor':
    """torchvision.utils.make_grid (torchvision 0.2x), tensor inputs."""
    import torch
    if isinstance(tensor, (list, tuple)):
        tensor = torch.stack(tensor, dim=0)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 3:
        if tensor.size(0) == 1:  # single-channel image: as RGB
            tensor = torch.cat((tensor, tensor, tensor), 0)
        tensor = tensor.unsqueeze(0)
    if tensor.dim() == 4 and tensor.size(1) == 1:
        tensor = torch.cat((tensor, tensor, tensor), 1)
    if normalize:
        tensor = tensor.clone()

        def norm_ip(img, low, high):
            img.clamp_(min=low, max=high)
            img.sub_(low).div_(max(high - low, 1e-5))

        def norm_range(t):
            if value_range is not None:
                norm_ip(t, value_range[0], value_range[1])
            else:
                norm_ip(t, float(t.min()), float(t.max()))

        if scale_each:
            for t in tensor:
                norm_range(t)
        else:
            norm_range(tensor)
    if tensor.size(0) == 1:
        return tensor.squeeze(0)
    nmaps = tensor.size(0)
    xmaps = min(nrow, nmaps)
    ymaps = (nmaps + xmaps - 1) // xmaps
    height, width = int(tensor.size(2) + padding), int(tensor.size(3) + padding)
    grid = tensor.new_full((tensor.size(1), height * ymaps + padding, width * xmaps + padding), pad_value)
    k = 0
    for y in range(ymaps):
        for x in range(xmaps):
            if k >= nmaps:
                break
            grid.narrow(1, y * height + padding, height - padding).narrow(
                2, x * width + padding, width - padding).copy_(tensor[k])
            k += 1
    return grid


def normalize(tensor: 'torch.Tensor', mean: Sequence[float], std: Sequence[float],
              inplace: bool = False) -> 'torch.Tensor':
    """torchvision.transforms.functional.normalize for tensors."""
    import torch
    t = tensor if inplace else tensor.clone()
    mean = torch.as_tensor(mean, dtype=t.dtype, device=t.device)
    std = torch.as_tensor(std, dtype=t.dtype, device=t.device)
    if (std == 0).any():
        raise ValueError(f'std evaluated to zero after conversion to {t.dtype}, leading to division by zero.')
    if mean.ndim == 1:
        mean = mean.view(-1, 1, 1)
    if std.ndim == 1:
        std = std.view(-1, 1, 1)
    return t.sub_(mean).div_(std)


def rgb_to_grayscale(img: 'torch.Tensor', num_output_channels: int = 1) -> 'torch.Tensor':
    """torchvision's tensor rgb_to_grayscale: ITU-R 601-2 luma, in the input's dtype."""
    if img.ndim < 3:
        raise TypeError(f'Input image tensor should have at least 3 dimensions, but found {img.ndim}')
    if img.shape[-3] not in (1, 3):
        raise TypeError(f'Input image tensor permitted channel values are [1, 3], but found {img.shape[-3]}')
    if num_output_channels not in (1, 3):
        raise ValueError('num_output_channels should be either 1 or 3')
    if img.shape[-3] == 3:
        r, g, b = img.unbind(dim=-3)
        gray = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(dim=-3)
    else:
        gray = img.clone()
    return gray.expand(img.shape[:-3] + (3,) + img.shape[-2:]) if num_output_channels == 3 else gray


class InterpolationMode(enum.Enum):
    """torchvision.transforms.InterpolationMode: spandrel's LaMa names it at import."""
    NEAREST = 'nearest'
    NEAREST_EXACT = 'nearest-exact'
    BILINEAR = 'bilinear'
    BICUBIC = 'bicubic'
    BOX = 'box'
    HAMMING = 'hamming'
    LANCZOS = 'lanczos'


def _module(name, package=False):
    mod = types.ModuleType(name)
    # A spec, so that importlib.util.find_spec (which libraries call to probe for torchvision) answers
    # instead of raising "torchvision.__spec__ is None".
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    mod.__file__ = __file__
    if package:
        mod.__path__ = []
        mod.__spec__.submodule_search_locations = []
    return mod


def install_standin() -> None:
    """Put the stand-in modules in sys.modules."""
    tv = _module('torchvision', package=True)
    tv.__version__ = STANDIN_VERSION
    utils = _module('torchvision.utils')
    utils.make_grid = make_grid
    transforms = _module('torchvision.transforms', package=True)
    functional = _module('torchvision.transforms.functional')
    functional.normalize = normalize
    functional.rgb_to_grayscale = rgb_to_grayscale
    functional.InterpolationMode = InterpolationMode  # spandrel's registry imports these two (LaMa only)
    functional.rotate = _unavailable('rotate (spandrel LaMa inpainting)')
    transforms.functional = functional
    models = _module('torchvision.models', package=True)
    vgg = _module('torchvision.models.vgg')

    def _vgg_attr(name):
        if name.startswith('__'):  # keep inspect/dynamo's module scans working
            raise AttributeError(name)
        return _unavailable('VGG perceptual loss')

    vgg.__getattr__ = _vgg_attr
    models.vgg = vgg
    models.inception_v3 = _unavailable('FID (Inception)')
    ops = _module('torchvision.ops')
    ops.deform_conv2d = _unavailable('deformable convolution (DCN)')
    for name, mod in {'torchvision': tv, 'torchvision.utils': utils, 'torchvision.transforms': transforms,
                      'torchvision.transforms.functional': functional,
                      'torchvision.transforms.functional_tensor': functional, 'torchvision.models': models,
                      'torchvision.models.vgg': vgg, 'torchvision.ops': ops}.items():
        sys.modules[name] = mod
        if name != 'torchvision':
            setattr(tv, name.split('.')[1], sys.modules['torchvision.' + name.split('.')[1]])


def alias_functional_tensor() -> None:
    """With a working torchvision: functional_tensor was removed in torchvision 0.17."""
    try:
        importlib.import_module('torchvision.transforms.functional_tensor')
    except ImportError:
        sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
            'torchvision.transforms.functional')


def apply() -> None:
    """The real torchvision when it works, else the stand-in."""
    if 'torchvision' in sys.modules and getattr(sys.modules['torchvision'], '__version__', '') == STANDIN_VERSION:
        return
    if torchvision_works():
        alias_functional_tensor()
    else:
        install_standin()
