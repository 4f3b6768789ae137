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

Each is one ``*_backend.py`` module declaring ``BACKEND = Backend(...)`` (``base.py``): its name, precisions,
help, what it needs, and how it prepares a model. This package finds them; nothing else lists them.
ONNX files and AOTInductor packages are built once and cached (``sr_kd.backends.cache``).
"""
import importlib
import pkgutil
from typing import TYPE_CHECKING, Optional, Tuple

from sr_kd.backends.base import Backend, Options, Runner, installed  # noqa: F401 - the package's public names
from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    import torch

    from sr_kd.archs.description import ModelInfo

ALL_PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16', 'int8')  # auto: see resolve_precision


def _discover():
    """{name: Backend} of every ``*_backend.py`` module of this package (its ``BACKEND``), eager first, auto
    last: adding a backend is adding one such file."""
    found = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.endswith('_backend'):
            spec = importlib.import_module(f'{__name__}.{module.name}').BACKEND
            found[spec.name] = spec
    order = sorted(found, key=lambda n: (n != 'eager', not found[n].measured, n))
    return {n: found[n] for n in order}


BACKENDS = _discover()
PRECISIONS = {n: b.precisions for n, b in BACKENDS.items() if b.measured}
NAMES = tuple(BACKENDS)


def help_text() -> str:
    """The --backend help of upscale and eval, from the backends themselves."""
    return ', '.join(b.help for b in BACKENDS.values())


def missing(backend: str) -> Optional[str]:
    """Why ``backend`` cannot run here (one phrase), or None."""
    return BACKENDS[backend].missing()


def auto_precision(device: str = 'cpu', backend: str = 'eager') -> Tuple[str, str]:
    """(precision, why) that ``auto`` means: bf16 where the device runs it in hardware (CUDA, a CPU with
    AVX512-BF16 or AMX) and the backend runs bf16, else fp32. On an AVX512-BF16 CPU bf16 measured 1.5-1.7x
    onnxruntime fp32 for IMDN at about -0.005 dB on Set5; emulated elsewhere, it is several times slower
    than fp32 (docs/performance.md)."""
    from sr_kd.hardware import bf16_is_native
    if backend in PRECISIONS and 'bf16' not in PRECISIONS[backend]:
        return 'fp32', f'--backend {backend} runs no bf16'
    if not bf16_is_native(device):
        return 'fp32', 'no bf16 in hardware here'
    return 'bf16', 'bf16 runs in hardware here'


def resolve_precision(precision: str, device: str = 'cpu', backend: str = 'eager') -> str:
    """``precision``, with ``auto`` replaced by what it means here (``auto_precision``)."""
    return auto_precision(device, backend)[0] if precision == 'auto' else precision


def check(backend: str, precision: str, device: str = 'cpu', exact_tiles: bool = False) -> None:
    """Refuse, in one line and before any work, a combination that cannot run."""
    precision = resolve_precision(precision, device, backend)
    if backend not in NAMES:
        raise SRKDError(f'--backend must be one of {", ".join(NAMES)}; got {backend!r}')
    if precision not in ALL_PRECISIONS:
        raise SRKDError(f'--precision must be one of {", ".join(ALL_PRECISIONS)}; got {precision!r}')
    spec = BACKENDS[backend]
    if not spec.measured:  # auto: some measured backend must run it
        if not any(precision in p for p in PRECISIONS.values()):
            raise SRKDError(f'no backend runs {precision}')
        return
    if precision not in spec.precisions:
        raise SRKDError(f'--backend {backend} runs {"/".join(spec.precisions)}, not {precision}')
    if backend != 'eager' and exact_tiles:
        raise SRKDError(f'--exact-tiles hooks the network\'s modules, so it needs --backend eager (not {backend})')
    if spec.cpu_only and not str(device).startswith('cpu'):
        raise SRKDError(f'--backend {backend} runs on the CPU here; use --backend eager for {device}')
    why = missing(backend)
    if why:
        raise SRKDError(f'--backend {backend}: {why}')


def prepare(backend: str, model: 'torch.nn.Module', info: 'ModelInfo', precision: str = 'fp32',
            options: Optional[Options] = None, exact_tiles: bool = False) -> Runner:
    """A ``Runner`` for ``model`` (an eval-mode nn.Module; ``info``: its ModelInfo) on ``backend``.

    Artefacts are taken from the cache or built there first (with a line on stderr); ``auto`` measures the
    available backends on the first input it is given, unless a decision for this machine and model is
    remembered.
    """
    options = options or Options()
    precision = resolve_precision(precision, options.device, backend)
    check(backend, precision, options.device, exact_tiles)
    return BACKENDS[backend].prepare(model, info, precision, options, exact_tiles)
