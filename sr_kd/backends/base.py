"""What every backend shares: the ``Backend`` each ``*_backend.py`` module declares as ``BACKEND`` (the one
place it is described), the ``Runner`` it returns and the ``Options`` it is given."""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Tuple

if TYPE_CHECKING:
    import torch


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
    def label(self) -> str:
        return f'{self.backend} {self.precision}'

    def standalone(self) -> Callable[['torch.Tensor'], 'torch.Tensor']:
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


def _nothing_missing() -> Optional[str]:
    return None


@dataclass
class Backend:
    """A way to run a model, as ``--backend NAME`` offers it.

    ``prepare(model, info, precision, options, exact_tiles)`` returns a Runner; ``missing()`` says in one
    phrase why it cannot run here (a package or a compiler), or None; ``cpu_only`` refuses other devices;
    ``measured`` backends are the candidates ``auto`` times against each other."""
    name: str
    precisions: Tuple[str, ...]
    help: str
    prepare: Callable
    missing: Callable[[], Optional[str]] = _nothing_missing
    cpu_only: bool = True
    measured: bool = True


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it: onnxscript (needed only to build the
    export) takes 1.5 s to import, which every cached ``--backend onnxruntime``/``auto`` call paid."""
    import importlib.util
    import sys
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None
