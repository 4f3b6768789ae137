"""The AOTInductor backend: ``torch.export`` with dynamic batch/height/width, compiled ahead of time by
inductor into a shared library (weights frozen in, so oneDNN packs them once at build time), packaged
as a ``.pt2`` file and cached: the compile is paid once per model, precision and machine, not per run.

bf16 is built by exporting the model under autocast, so the package computes what eager autocast does.
"""
import copy
from typing import TYPE_CHECKING, Callable, Optional

import torch

from sr_kd.backends.base import Backend, Options, Runner
from sr_kd.backends.cache import Entry, model_digest

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo


class _Export(torch.nn.Module):
    """The network as it is exported: float32 in, float32 out, autocast inside for bf16."""

    def __init__(self, net, precision):
        super().__init__()
        self.net, self.precision = net, precision

    def forward(self, x):
        if self.precision == 'fp32':
            return self.net(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return self.net(x).float()


def _versions():
    return {'torch': torch.__version__, 'cpu': torch.backends.cpu.get_cpu_capability()}


def compile_package(model: torch.nn.Module, info: 'ModelInfo', precision: str, path: str) -> None:
    """Export and AOT-compile ``model`` to ``path`` (.pt2)."""
    from sr_kd.export import _example_and_dims

    x, dims = _example_and_dims(info)
    x = x.repeat(2, 1, 1, 1)  # batch 1 would be specialised (0/1 rule): adaptive cropping runs batches of 4
    net = _Export(copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format).cpu(), precision)
    with torch.no_grad():
        program = torch.export.export(net, (x,), dynamic_shapes={'x': dims})
    torch._inductor.aoti_compile_and_package(program, package_path=path, inductor_configs={'freezing': True})


def load_package(path: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The package as a callable, through the C++ loader that ``torch._inductor.aoti_load_package`` wraps.
    Not through that function: importing torch._inductor and its Python-side loading cost 4-6 s in every new
    process (measured on 2 cores: import 1.9-2.5 s, load 2.7-3.3 s; the C++ loader alone, first call
    included, about 1 s), more than a folder of images gains from the package over eager."""
    loader = torch._C._aoti.AOTIModelPackageLoader(path, 'model', False, 1, -1)

    def run(x):
        return loader.run([x.contiguous()])[0]  # one tensor in, one out: the exported forward's signature
    return run


def prepare_aoti(model: torch.nn.Module, info: 'ModelInfo', precision: str, options: Options,
                 exact_tiles: bool = False) -> Runner:
    key = {'backend': 'aoti', 'model': model_digest(model), 'precision': precision,
           'shapes': f'dynamic batch/height/width, sides multiple of {info.size_multiple}'}
    entry = Entry(key, _versions(), '.pt2', options.cache_root)
    path, meta, built = entry.get(lambda tmp: compile_package(model, info, precision, tmp),
                                  f'the AOTInductor {precision} package of {info.label} (a C++ compile: minutes on 2 cores)')
    return Runner(fn=load_package(path), backend='aoti', precision=precision, autocast='fp32', eager=False,
                  note=f'built in {meta["build_seconds"]:.0f} s' if built else 'cached')


def missing() -> Optional[str]:
    import os
    import shutil
    if not any(shutil.which(c) for c in (os.environ.get('CXX') or 'c++', 'g++', 'clang++')):
        return 'AOTInductor needs a C++ compiler (g++ or clang++) and none was found'
    return None


BACKEND = Backend('aoti', ('fp32', 'bf16'), 'aoti (an AOTInductor package)', prepare_aoti, missing)
