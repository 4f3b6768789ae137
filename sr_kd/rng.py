"""Python, numpy and torch RNG states as plain tensors and lists (so ``weights_only=True`` loads them).

Saved in every training state (``compat_identical``), restored by sr_kd's exact resume
(``own_run_behaviour``) and around sr_kd's validation (``models/own_validation``)."""
import random

import numpy as np
import torch


def rng_state() -> dict:
    """The current Python, numpy, torch (and CUDA) RNG states."""
    version, keys, gauss = random.getstate()
    kind, mt, pos, has_gauss, cached = np.random.get_state()
    return {'python': [version, list(keys), gauss], 'numpy': [kind, torch.from_numpy(mt.astype(np.int64)),
                                                             pos, has_gauss, cached],
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    """Restore states made by ``rng_state``."""
    version, keys, gauss = state['python']
    random.setstate((version, tuple(keys), gauss))
    kind, mt, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, mt.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
