"""Checks of an option file before BasicSR sees it, so a typo fails in seconds with one line, not
after hours (or with a traceback): YAML syntax (line and column), registry names (with close matches),
the distillation section. Deeper checks that need the built networks run in the model's constructor,
still before the first iteration."""
import argparse
import os

import yaml

from sr_kd.errors import SRKDError, close_matches


def load_yaml(path):
    """The option file as a dict; SRKDError with line and column on a syntax error."""
    if not os.path.isfile(path):
        raise SRKDError(f'option file not found: {path}')
    from basicsr.utils.options import ordered_yaml
    try:
        with open(path) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f'line {mark.line + 1}, column {mark.column + 1}' if mark else 'unknown position'
        raise SRKDError(f'{path}: YAML syntax error at {where}: {e.problem or e.context}') from e
    except yaml.YAMLError as e:
        raise SRKDError(f'{path}: YAML error: {e}') from e
    if not isinstance(opt, dict):
        raise SRKDError(f'{path}: an option file must be a mapping of keys to values')
    return opt


def check_registered(registry, name, what):
    if name not in registry._obj_map:
        raise SRKDError(f'unknown {what} {name!r}{close_matches(name, registry._obj_map)}')


def check_options(opt, is_train=True):
    """Raise SRKDError for the first problem found in an option dict."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    for key in ('name', 'model_type', 'network_g', 'datasets', 'path'):
        if key not in opt:
            raise SRKDError(f'option file has no {key!r} section')
    check_registered(MODEL_REGISTRY, opt['model_type'], 'model_type')
    for net_key in [k for k in opt if k.startswith('network_')]:
        net = opt[net_key]
        if not isinstance(net, dict) or 'type' not in net:
            raise SRKDError(f'{net_key} needs a type')
        check_registered(ARCH_REGISTRY, net['type'], f'{net_key} type')
    if not isinstance(opt['datasets'], dict) or not opt['datasets']:
        raise SRKDError('datasets must list at least one dataset')
    for phase, ds in opt['datasets'].items():
        if not isinstance(ds, dict) or 'type' not in ds:
            raise SRKDError(f'datasets.{phase} needs a type')
        check_registered(DATASET_REGISTRY, ds['type'], f'datasets.{phase} type')
        for key in ('dataroot_gt', 'dataroot_lq'):
            root = ds.get(key)
            if root is not None and root != 'skimage' and ds.get('io_backend', {}).get('type', 'disk') == 'disk' \
                    and not os.path.isdir(os.path.expanduser(root)):
                raise SRKDError(f'datasets.{phase}.{key}: folder not found: {root}')
    if is_train:
        train = opt.get('train')
        if not isinstance(train, dict):
            raise SRKDError("a training option file needs a 'train' section")
        for key in ('pixel_opt', 'perceptual_opt'):
            if isinstance(train.get(key), dict):
                check_registered(LOSS_REGISTRY, train[key].get('type'), f'train.{key} type')
        terms = train.get('distill_opts') or []
        if not isinstance(terms, list):
            raise SRKDError('train.distill_opts must be a list of loss terms')
        for i, term in enumerate(terms):
            if not isinstance(term, dict) or 'type' not in term:
                raise SRKDError(f'train.distill_opts[{i}] needs a type')
            check_registered(LOSS_REGISTRY, term['type'], f'distillation loss type (distill_opts[{i}])')
        if terms or 'network_t' in opt:
            teacher = (opt.get('path') or {}).get('pretrain_network_t')
            if not teacher:
                raise SRKDError('path.pretrain_network_t is missing: the teacher needs its weights')
            if not os.path.isfile(os.path.expanduser(teacher)):
                raise SRKDError(f'teacher checkpoint not found: {teacher}')


def precheck_argv(argv, is_train=True):
    """Check the option file named by ``-opt`` in argv (BasicSR parses argv again afterwards)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    args, _ = parser.parse_known_args(argv)
    if not args.opt:
        raise SRKDError('usage: -opt OPTION_FILE.yml is required')
    check_options(load_yaml(args.opt), is_train)
