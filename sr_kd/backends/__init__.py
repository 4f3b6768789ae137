"""Ways to run one loaded model: each backend turns it into a plain callable ``tensor -> tensor``.

``sr_kd.inference.upscale`` takes that callable where it takes a model, so whole images, tiles and
adaptive cropping go through the same code for every backend. Exact tiles hook the network's modules,
so they need the eager model (``Runner.eager``); the other backends refuse them in one line.

    eager        the PyTorch module (channels-last); fp32, or bf16/fp16 under autocast
    onnxruntime  the model exported to ONNX (``sr_kd.export``), run by onnxruntime's CPU provider; fp32,
                 or int8 (static quantisation calibrated on a few photographs, refused where it costs
                 more than ``INT8_MAX_COST_DB`` unless forced)
    aoti         an AOTInductor package (torch.export + inductor, weights frozen into the code); fp32, bf16
    auto         measures the available ones once per machine and model, remembers the choice

ONNX files and AOTInductor packages are built once and cached (``sr_kd.backends.cache``).
"""
from dataclasses import dataclass
from typing import Callable

from sr_kd.errors import SRKDError

PRECISIONS = {'eager': ('fp32', 'bf16', 'fp16'), 'onnxruntime': ('fp32', 'int8'), 'aoti': ('fp32', 'bf16')}
NAMES = tuple(PRECISIONS) + ('auto',)
ALL_PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16', 'int8')  # auto: see resolve_precision
INT8_MAX_COST_DB = 0.05  # largest PSNR loss int8 may cost on the check images without --force-int8


@dataclass
class Runner:
    """A model made runnable by one backend."""
    fn: Callable          # NCHW float32 tensor -> NCHW float tensor
    backend: str
    precision: str
    autocast: str         # what ``upscale`` should autocast to: the precision for eager, 'fp32' where it is built in
    eager: bool           # ``fn`` is the nn.Module (exact tiles can hook it)
    note: str = ''        # how it was got: 'cached', 'built in 41 s', the auto decision

    @property
    def label(self):
        return f'{self.backend} {self.precision}'

    def standalone(self):
        """``fn`` with its autocast inside, for callers that run it without ``upscale``'s precision argument
        (``evaluate``, ``auto``'s candidates); the module itself where nothing is to be added."""
        if self.autocast == 'fp32':
            return self.fn
        from sr_kd.inference import autocast
        fn, precision = self.fn, self.autocast

        def run(x):
            with autocast(x.device, precision):
                return fn(x).float()
        return run


@dataclass
class Options:
    """What a backend needs besides the model: device, threads, int8 permission, and the models' facts."""
    device: str = 'cpu'
    force_int8: bool = False
    cache_root: str = None   # default: sr_kd.backends.cache.cache_root()


def installed(module):
    """Whether ``module`` can be imported, without importing it: onnxscript (needed only to build the
    export) takes 1.5 s to import, which every cached ``--backend onnxruntime``/``auto`` call paid."""
    import importlib.util
    import sys
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def missing(backend):
    """Why ``backend`` cannot run here (one phrase), or None."""
    if backend == 'onnxruntime':
        for module, what in (('onnxruntime', 'onnxruntime'), ('onnxscript', 'onnxscript (the ONNX exporter)')):
            if not installed(module):
                return f'{what} is not installed (pip install sr_kd[export])'
    if backend == 'aoti':
        import os
        import shutil
        if not any(shutil.which(c) for c in (os.environ.get('CXX') or 'c++', 'g++', 'clang++')):
            return 'AOTInductor needs a C++ compiler (g++ or clang++) and none was found'
    return None


def auto_precision(device='cpu', backend='eager'):
    """(precision, why) that ``auto`` means: bf16 where the device runs it in hardware (CUDA, a CPU with
    AVX512-BF16 or AMX) and the backend runs bf16, else fp32. On an AVX512-BF16 CPU bf16 measured 1.5-1.7x
    onnxruntime fp32 for IMDN at about -0.005 dB on Set5; emulated elsewhere, it is several times slower
    than fp32 (docs/performance.md)."""
    from sr_kd.hardware import bf16_is_native
    if backend != 'auto' and 'bf16' not in PRECISIONS.get(backend, ()):
        return 'fp32', f'--backend {backend} runs no bf16'
    if not bf16_is_native(device):
        return 'fp32', 'no bf16 in hardware here'
    return 'bf16', 'bf16 runs in hardware here'


def resolve_precision(precision, device='cpu', backend='eager'):
    """``precision``, with ``auto`` replaced by what it means here (``auto_precision``)."""
    return auto_precision(device, backend)[0] if precision == 'auto' else precision


def check(backend, precision, device='cpu', exact_tiles=False):
    """Refuse, in one line and before any work, a combination that cannot run."""
    precision = resolve_precision(precision, device, backend)
    if backend not in NAMES:
        raise SRKDError(f'--backend must be one of {", ".join(NAMES)}; got {backend!r}')
    if precision not in ALL_PRECISIONS:
        raise SRKDError(f'--precision must be one of {", ".join(ALL_PRECISIONS)}; got {precision!r}')
    if backend == 'auto':
        if not any(precision in p for p in PRECISIONS.values()):
            raise SRKDError(f'no backend runs {precision}')
        return
    if precision not in PRECISIONS[backend]:
        raise SRKDError(f'--backend {backend} runs {"/".join(PRECISIONS[backend])}, not {precision}')
    if backend != 'eager' and exact_tiles:
        raise SRKDError(f'--exact-tiles hooks the network\'s modules, so it needs --backend eager (not {backend})')
    if backend != 'eager' and not str(device).startswith('cpu'):
        raise SRKDError(f'--backend {backend} runs on the CPU here; use --backend eager for {device}')
    why = missing(backend)
    if why:
        raise SRKDError(f'--backend {backend}: {why}')


def prepare(backend, model, info, precision='fp32', options=None, exact_tiles=False):
    """A ``Runner`` for ``model`` (an eval-mode nn.Module; ``info``: its ModelInfo) on ``backend``.

    Artefacts are taken from the cache or built there first (with a line on stderr); ``auto`` measures the
    available backends on the first input it is given, unless a decision for this machine and model is
    remembered.
    """
    options = options or Options()
    precision = resolve_precision(precision, options.device, backend)
    check(backend, precision, options.device, exact_tiles)
    if backend == 'auto':
        from sr_kd.backends.auto import prepare_auto
        return prepare_auto(model, info, precision, options, exact_tiles)
    if backend == 'eager':
        from sr_kd.backends.eager import prepare_eager
        return prepare_eager(model, precision)
    if backend == 'onnxruntime':
        from sr_kd.backends.onnx_backend import prepare_onnxruntime
        return prepare_onnxruntime(model, info, precision, options)
    from sr_kd.backends.aoti_backend import prepare_aoti
    return prepare_aoti(model, info, precision, options)
