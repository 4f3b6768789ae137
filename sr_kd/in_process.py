"""A training run built in this process, the way ``sr_kd/train.py`` builds it before its first step: sr_kd's
run behaviour, the start-up check, basicsr's option parsing, its data loaders and ``build_model``.

For the studies that probe a term without training (gradient shares, step times: scripts/) and the tests
that need the real model of an option file without a subprocess: one path, so neither builds a copy of it.
"""
import os
import sys
from typing import Optional, Tuple


def training_options(opt_path: str, root: str) -> dict:
    """The option dict basicsr's train pipeline makes of ``opt_path`` under ``root`` (experiments go to
    ``root/experiments``), after sr_kd's start-up check; the experiment folder is made."""
    from basicsr.utils.options import parse_options

    import sr_kd
    from sr_kd import own_run_behaviour
    from sr_kd.options import precheck_argv
    sr_kd.load()
    own_run_behaviour.apply()
    precheck_argv(['-opt', str(opt_path)])
    argv, sys.argv = sys.argv, ['train.py', '-opt', str(opt_path)]  # basicsr reads the command line itself
    try:
        opt, _ = parse_options(str(root), is_train=True)
    finally:
        sys.argv = argv
    opt['root_path'] = str(root)
    os.makedirs(opt['path']['experiments_root'], exist_ok=True)
    return opt


def build_training(opt_path: str, root: str, loader: bool = True) -> Tuple[object, Optional[object]]:
    """(model, training data loader or None) of the option file ``opt_path``, as train.py builds them."""
    from basicsr.models import build_model
    from basicsr.train import create_train_val_dataloader
    from basicsr.utils import get_root_logger

    opt = training_options(opt_path, root)
    train_loader = create_train_val_dataloader(opt, get_root_logger())[0] if loader else None
    return build_model(opt), train_loader
