"""Checks of an option file before BasicSR sees it, so a typo fails in seconds with one line, not
after hours (or with a traceback): YAML syntax (line and column), the types of the keys BasicSR reads,
registry names (with close matches), networks, losses, optimizer, scheduler and metrics built once on
dummy inputs, data folders and HR/LR pairs; then what only building finds: the training dataset (its
images against gt_size) and, for SRKDModel, the student joined to its teacher (pairs, spatial sizes, every
term on a probe batch: ``sr_kd.distill.wiring``), in memory on the CPU. Nothing is created, archived or
loaded for the run before the last of these has passed."""
import argparse
import copy
import inspect
import logging
import os
import re
from contextlib import contextmanager

import yaml

from sr_kd.errors import SRKDError
from sr_kd.rules import (check_registered, check_teacher_scale, distill_pairs, is_int, is_number, nonfinite_policy,
                         teacher_path, term_fades, train_has_gt)


def load_yaml(path: str) -> dict:
    """The option file as a dict, read with the safe loader (``sr_kd.safe_yaml``: a Python tag is refused
    and nothing runs); SRKDError with line and column on a syntax error."""
    from sr_kd import safe_yaml

    if not os.path.isfile(path):
        raise SRKDError(f'option file not found: {path}')
    try:
        with open(path) as f:
            opt = safe_yaml.load(f)
    except (safe_yaml.RefusedTag, safe_yaml.Refused) as e:
        raise SRKDError(f'{path}: {e}') from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f'line {mark.line + 1}, column {mark.column + 1}' if mark else 'unknown position'
        raise SRKDError(f'{path}: YAML syntax error at {where}: {e.problem or e.context}') from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SRKDError(f'{path}: YAML error: {str(e).splitlines()[0]}') from e
    if not isinstance(opt, dict):
        raise SRKDError(f'{path}: an option file must be a mapping of keys to values')
    return opt


# ----- small type checks: each names the key and the value it found ---------------------------------
def _section(opt, key, where='', required=True):
    val = opt.get(key)
    if val is None and not required:
        return {}
    if not isinstance(val, dict):
        raise SRKDError(f'{where}{key} must be a section of keys, not {val!r}' if key in opt
                        else f'option file has no {where}{key!r} section')
    return val


def _int(d, key, where, minimum=1, default=None, whole_float=False):
    """``whole_float``: also 5000.0, for the keys BasicSR's own option files write as ``!!float 5e3`` (it
    only compares or casts them)."""
    val = d.get(key, default)
    whole = is_int(val) or (whole_float and isinstance(val, float) and val.is_integer())
    if not whole or val < minimum:
        raise SRKDError(f'{where}{key} must be a whole number >= {minimum}, not {val!r}' if key in d
                        else f'{where}{key} is missing')
    return val


def _choice(d, key, where, choices, default=None):
    val = d.get(key, default)
    if val not in choices:
        raise SRKDError(f'{where}{key} must be one of {", ".join(map(repr, choices))}, not {val!r}')
    return val


def _bools(d, where, *keys):
    for key in keys:
        if key in d and not isinstance(d[key], bool):
            raise SRKDError(f'{where}{key} must be true or false, not {d[key]!r}')


# what YAML 1.2 and most people read as a number, but PyYAML (YAML 1.1) as text: no '.' before the exponent
_SCIENTIFIC_TEXT = re.compile(r'[-+]?\d+[eE][-+]?\d+')
# names, text whatever they look like: a run's or a term's name, and the image names a dataset keeps or leaves
# out (sr-kd distill writes a photograph named 1e3.png as exclude: [1e3])
_NAME_KEYS = ('name', 'images', 'exclude')


def _numbers_written_as_text(node, where=''):
    """'5e-4' anywhere in the file: PyYAML reads it as text, and a check or builder after this would fail on
    the text ("'<=' not supported between 'float' and 'str'")."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, val in items:
        here = f'{where}[{key}]' if isinstance(key, int) else f'{where}{"." if where else ""}{key}'
        if key in _NAME_KEYS:
            continue
        if isinstance(val, str) and _SCIENTIFIC_TEXT.fullmatch(val.strip()):
            mantissa, exponent = val.strip().lower().split('e')
            raise SRKDError(f'{here}: {val!r} is text to YAML (PyYAML reads a number with an exponent as a number '
                            f'only with a decimal point): write {mantissa}.0e{exponent}')
        _numbers_written_as_text(val, here)


def _weight(d, where):
    val = d.get('loss_weight', 1.0)
    if not is_number(val):
        raise SRKDError(f'{where}loss_weight must be a number, not {val!r}')


def _build(what, make):
    """Build something from options once; its argument errors become one line naming ``what``."""
    try:
        return make()
    except SRKDError as e:
        raise SRKDError(f'{what}: {e}') from e
    except (TypeError, ValueError, KeyError, IndexError, AssertionError, NotImplementedError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SRKDError(f'{what}: {msg}') from e


# ----- sections ----------------------------------------------------------------------------------------
def _check_networks(opt):
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY

    ups = {}
    for key in [k for k in opt if k.startswith('network_')]:
        net = _section(opt, key)
        # --- network_t: {type: auto}: the file says what it is; load it now (sr_kd.archs.loading) ---
        from sr_kd.archs.loading import is_auto, load_teacher
        if key == 'network_t' and is_auto(net):
            load_teacher(opt)
            continue
        # ---
        check_registered(ARCH_REGISTRY, net.get('type'), f'{key} type')
        _build(key, lambda: build_network(copy.deepcopy(net)))
        default = inspect.signature(ARCH_REGISTRY.get(net['type'])).parameters.get('upscale')
        if 'upscale' in net or (default is not None and default.default is not inspect.Parameter.empty):
            ups[key] = net.get('upscale', default.default if default else None)
    if 'network_t' in ups and 'network_g' in ups:
        check_teacher_scale(ups['network_t'], ups['network_g'])
    for key, up in ups.items():
        if up != opt['scale']:
            raise SRKDError(f'{key} upscale x{up} differs from scale: {opt["scale"]}')


def _check_paired_folder(ds, where, scale, train):
    """BasicSR's PairedImageDataset on a folder: same names, HR = scale x LR (validation and test crop
    an HR up to scale - 1 pixels larger, as benchmark sets need), HR at least the crop."""
    from sr_kd.image_io import image_size

    gt_root, lq_root = ds['dataroot_gt'], ds['dataroot_lq']
    names = {root: sorted(e.name for e in os.scandir(root) if e.is_file()) for root in (gt_root, lq_root)}
    if len(names[gt_root]) != len(names[lq_root]):
        raise SRKDError(f'{where}: {len(names[gt_root])} HR files in {gt_root} but {len(names[lq_root])} '
                        f'LR files in {lq_root}')
    tmpl = ds.get('filename_tmpl', '{}')
    lq_set = set(names[lq_root])
    for name in names[gt_root]:
        base, ext = os.path.splitext(name)
        lq_name = f'{tmpl.format(base)}{ext}'
        if lq_name not in lq_set:
            raise SRKDError(f'{where}: HR image {name} has no LR partner {lq_name} in {lq_root}')
        (gw, gh), (lw, lh) = image_size(os.path.join(gt_root, name)), image_size(os.path.join(lq_root, lq_name))
        slack = 0 if train else scale - 1
        if not (0 <= gw - lw * scale <= slack and 0 <= gh - lh * scale <= slack):
            raise SRKDError(f'{where}: HR {name} is {gw}x{gh} but its LR is {lw}x{lh}; at scale {scale} '
                            f'the HR must be {lw * scale}x{lh * scale}')
        if train and min(gw, gh) < ds['gt_size']:
            raise SRKDError(f'{where}: HR {name} is {gw}x{gh}, smaller than the crop gt_size={ds["gt_size"]}')


def _check_datasets(opt, is_train):
    from basicsr.utils.registry import DATASET_REGISTRY

    datasets = _section(opt, 'datasets')
    if not datasets:
        raise SRKDError('datasets must list at least one dataset')
    if is_train and 'train' not in datasets:
        raise SRKDError('datasets has no train dataset')
    for phase, ds in datasets.items():
        where = f'datasets.{phase}.'
        kind = str(phase).split('_')[0]
        if is_train and kind not in ('train', 'val'):
            raise SRKDError(f"datasets.{phase}: a training option file names datasets 'train' or 'val_*'")
        ds = _section(datasets, phase, 'datasets.')
        check_registered(DATASET_REGISTRY, ds.get('type'), f'{where}type')
        if not isinstance(ds.get('name'), str):
            raise SRKDError(f'{where}name must be a text, not {ds.get("name")!r}')
        backend = _section(ds, 'io_backend', where, required=False).get('type', 'disk')
        needs = {'HROnlyDataset': ('dataroot_gt',), 'PairedImageDataset': ('dataroot_gt', 'dataroot_lq'),
                 'PlainImageDataset': ('dataroot_lq',)}
        for key in needs.get(ds['type'], ()):
            if key not in ds:
                raise SRKDError(f'{where}{key} is missing')
        for key in ('dataroot_gt', 'dataroot_lq'):
            root = ds.get(key)
            if key in ds and not isinstance(root, str):
                raise SRKDError(f'{where}{key} must be a folder path, not {root!r}')
            if root is not None and root != 'skimage' and backend == 'disk' \
                    and not os.path.isdir(os.path.expanduser(root)):
                hint = ' (datasets/README.md says how to prepare it)' if root.startswith('datasets/') else ''
                raise SRKDError(f'{where}{key}: folder not found: {root}{hint}')
        if kind == 'train':
            _int(ds, 'batch_size_per_gpu', where)
            _int(ds, 'num_worker_per_gpu', where, minimum=0)
            _int(ds, 'dataset_enlarge_ratio', where, default=1)
            _int(ds, 'gt_size', where)
            _bools(ds, where, 'use_hflip', 'use_rot', 'pin_memory', 'persistent_workers')
            _choice(ds, 'prefetch_mode', where, (None, 'cpu', 'cuda'))
            if ds.get('prefetch_mode') == 'cuda' and not _cuda_devices():
                raise SRKDError(f"{where}prefetch_mode: cuda needs a GPU; use ~ or cpu")
        no_gt = kind == 'val' and (ds['type'] == 'PlainImageDataset' or ds.get('against') == 'teacher')
        if no_gt and (opt.get('model_type') != 'SRKDModel' or 'network_t' not in opt):
            raise SRKDError(f'{where[:-1]} has no ground truth: it is validated against the teacher, which needs '
                            'model_type: SRKDModel and a network_t')
        if ds['type'] == 'PairedImageDataset':
            _section(ds, 'io_backend', where)
            for key in ('use_hflip', 'use_rot') if kind == 'train' else ():
                if key not in ds:
                    raise SRKDError(f'{where}{key} is missing (PairedImageDataset needs it for training)')
        if ds['type'] == 'PairedImageDataset' and backend == 'disk' and not ds.get('meta_info_file') \
                and ds.get('dataroot_gt') and ds.get('dataroot_lq'):
            _check_paired_folder(ds, f'datasets.{phase}', opt['scale'], kind == 'train')


def _cuda_devices():
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _check_train(opt):
    import torch
    from basicsr.losses import build_loss
    from basicsr.models import lr_scheduler
    from basicsr.utils.registry import LOSS_REGISTRY

    from sr_kd.distill.head import build_terms
    from sr_kd.losses.base import DistillLoss

    train = _section(opt, 'train')
    _int(train, 'total_iter', 'train.', whole_float=True)
    if not is_int(train.get('warmup_iter', -1)):
        raise SRKDError(f'train.warmup_iter must be a whole number, not {train["warmup_iter"]!r}')
    optim = _section(train, 'optim_g', 'train.')
    _choice(optim, 'type', 'train.optim_g.', ('Adam',))
    if 'lr' not in optim:
        raise SRKDError('train.optim_g.lr is missing')
    if not is_number(optim['lr']) or optim['lr'] < 0:  # 0 freezes the student (a measurement run)
        raise SRKDError(f'train.optim_g.lr must be a number >= 0, not {optim["lr"]!r}')
    dummy = [torch.zeros(1, requires_grad=True)]
    kwargs = {k: v for k, v in optim.items() if k != 'type'}
    optimizer = _build('train.optim_g', lambda: torch.optim.Adam(dummy, **kwargs))
    sched = _section(train, 'scheduler', 'train.')
    kinds = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
             'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}
    kind = _choice(sched, 'type', 'train.scheduler.', tuple(kinds))
    kwargs = {k: v for k, v in sched.items() if k != 'type'}
    _build('train.scheduler', lambda: kinds[kind](optimizer, **kwargs))
    # --- a dataset without ground truth (PlainImageDataset): the teacher's output is the only target ---
    plain = not train_has_gt(opt)
    no_gt_type = plain and opt['datasets']['train']['type']
    if plain and (train.get('pixel_opt') or train.get('perceptual_opt')):
        raise SRKDError(f'train.pixel_opt/perceptual_opt compare with ground truth, which a {no_gt_type} does '
                        'not have: leave them out and distil the teacher\'s output (OutputDistillLoss in distill_opts)')
    if plain and not train.get('distill_opts'):
        raise SRKDError(f'a {no_gt_type} has no ground truth: train.distill_opts must hold the target '
                        '(e.g. {type: OutputDistillLoss, criterion: l1})')
    # ---
    if not plain and not train.get('pixel_opt') and not train.get('perceptual_opt'):
        raise SRKDError('train needs a pixel_opt (or perceptual_opt) loss')
    for key in ('pixel_opt', 'perceptual_opt'):
        if train.get(key) is not None:
            loss = _section(train, key, 'train.')
            check_registered(LOSS_REGISTRY, loss.get('type'), f'train.{key} type')
            _weight(loss, f'train.{key}.')
            _build(f'train.{key}', lambda: build_loss(copy.deepcopy(loss)))
    terms = train.get('distill_opts') or []
    if not isinstance(terms, list):
        raise SRKDError('train.distill_opts must be a list of loss terms')
    for i, term in enumerate(terms):  # the type is build_terms' rule (distill/head.py)
        if not isinstance(term, dict):
            raise SRKDError(f'train.distill_opts[{i}] must be a section with a type, not {term!r}')
        _weight(term, f'train.distill_opts[{i}].')
    for i, term in enumerate(_build('train.distill_opts', lambda: build_terms(copy.deepcopy(terms)))[1]):
        if not isinstance(term, DistillLoss):
            raise SRKDError(f'train.distill_opts[{i}]: {type(term).__name__} is not a distillation loss '
                            '(a task loss belongs in pixel_opt)')
    nonfinite_policy(train)
    ema = train.get('ema_decay', 0)
    if not is_number(ema) or not 0 <= ema < 1:
        raise SRKDError(f'train.ema_decay must be a number in [0, 1), not {ema!r}')
    if terms or 'network_t' in opt:
        teacher_path(opt)
        distill_pairs(opt)
        fades = term_fades(opt)
        if fades and all(fades) and not train.get('pixel_opt') and not train.get('perceptual_opt'):
            raise SRKDError('distill.fade turns distillation off at its end, and this run has no task loss '
                            '(pixel_opt) to train on after it: remove distill.fade or add a pixel_opt')


def _check_val(opt, is_train):
    import numpy as np
    from basicsr.metrics import calculate_metric
    from basicsr.utils.registry import METRIC_REGISTRY

    val = _section(opt, 'val', required=False)
    if not val:
        return
    if is_train:
        _int(val, 'val_freq', 'val.', whole_float=True)
    _bools(val, 'val.', 'save_img', 'pbar')
    metrics = _section(val, 'metrics', 'val.', required=False)
    if val.get('keep_best') is not None and val['keep_best'] not in metrics:
        raise SRKDError(f'val.keep_best names a metric of val.metrics ({", ".join(metrics) or "none"}), '
                        f'not {val["keep_best"]!r}')
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    for name, metric in metrics.items():
        metric = _section(metrics, name, 'val.metrics.')
        check_registered(METRIC_REGISTRY, metric.get('type'), f'val.metrics.{name} type')
        if 'crop_border' in metric:
            _int(metric, 'crop_border', f'val.metrics.{name}.', minimum=0)
        _bools(metric, f'val.metrics.{name}.', 'test_y_channel')
        _build(f'val.metrics.{name}', lambda: calculate_metric({'img': imgs[0], 'img2': imgs[1]}, metric))


@contextmanager
def _logger_left_unset():
    """The checks build networks and losses, which log through basicsr's root logger; its first use sets
    it up for good, and without the run's log file. Undo that setup when the checks set it up."""
    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger('basicsr')
    was_set, handlers = 'basicsr' in basicsr_logger.initialized_logger, list(logger.handlers)
    try:
        yield
    finally:
        if not was_set:
            basicsr_logger.initialized_logger.pop('basicsr', None)
            for handler in [h for h in logger.handlers if h not in handlers]:
                logger.removeHandler(handler)


def check_options(opt: dict, is_train: bool = True) -> None:
    """Raise SRKDError for the first problem found in an option dict."""
    with _logger_left_unset():
        _check_options(opt, is_train)


def _check_options(opt, is_train):
    from basicsr.utils.registry import MODEL_REGISTRY

    from sr_kd import schema

    for key in ('name', 'model_type', 'network_g', 'datasets', 'path'):
        if key not in opt:
            raise SRKDError(f'option file has no {key!r} section')
    _numbers_written_as_text(opt)
    schema.validate(opt)
    if not isinstance(opt['name'], str) or not opt['name'].strip() or '/' in opt['name']:
        raise SRKDError(f'name must be a non-empty text without "/", not {opt["name"]!r}')
    check_registered(MODEL_REGISTRY, opt['model_type'], 'model_type')
    _int(opt, 'scale', '')
    if opt.get('num_gpu') != 'auto':
        _int(opt, 'num_gpu', '', minimum=0)
        devices = _cuda_devices()
        if opt.get('num_gpu', 0) > devices:  # basicsr would assert after building the datasets
            raise SRKDError(f'num_gpu: {opt["num_gpu"]}, but torch sees {devices} CUDA devices on this '
                            'machine: use num_gpu: 0 (CPU) or auto')
    if opt.get('manual_seed') is not None:
        _int(opt, 'manual_seed', '', minimum=0)
    path = _section(opt, 'path')
    _bools(path, 'path.', *[k for k in path if k.startswith('strict_load')])
    for key in [k for k in path if k.startswith(('pretrain_network', 'resume_state'))]:
        if path[key] is not None and not isinstance(path[key], str):
            raise SRKDError(f'path.{key} must be a file path or ~, not {path[key]!r}')
    for key in ('pretrain_network_g', 'resume_state'):
        if path.get(key) and not os.path.isfile(os.path.expanduser(path[key])):
            raise SRKDError(f'path.{key}: file not found: {path[key]}')
    _check_networks(opt)
    _check_datasets(opt, is_train)
    if is_train:
        _check_train(opt)
        logger = _section(opt, 'logger')
        _int(logger, 'print_freq', 'logger.', whole_float=True)
        _int(logger, 'save_checkpoint_freq', 'logger.', whole_float=True)
        _bools(logger, 'logger.', 'use_tb_logger', 'save_safetensors')
        if logger.get('save_safetensors') and opt.get('model_type') != 'SRKDModel':
            raise SRKDError('logger.save_safetensors is written by model_type: SRKDModel; for another model, '
                            'convert a checkpoint with sr-kd export CKPT --safetensors OUT.safetensors')
    _check_val(opt, is_train)
    if is_train:
        _check_built(opt)


def _check_built(opt):
    """Build, in memory, what the run builds first and a check cannot see otherwise: the training dataset
    and the student wired to its teacher. Their log lines are the run's to print, so the logger is quiet."""
    import torch
    from basicsr.archs import build_network
    from basicsr.data import build_dataset

    logger = logging.getLogger('basicsr')
    was = logger.disabled
    logger.disabled = True
    try:
        ds = dict(copy.deepcopy(opt['datasets']['train']), phase='train', scale=opt['scale'])
        _build('datasets.train', lambda: build_dataset(ds))
        if opt['model_type'] != 'SRKDModel':
            return
        from sr_kd.distill.teacher import Teacher
        from sr_kd.distill.wiring import wire
        run_opt = copy.deepcopy(opt)  # pairs: auto is resolved into it
        cpu = torch.device('cpu')
        student = build_network(copy.deepcopy(run_opt['network_g']))
        wire(run_opt, student, Teacher(run_opt, cpu).net, cpu)
    finally:
        logger.disabled = was


def precheck_argv(argv: list, is_train: bool = True) -> dict:
    """Check the option file named by ``-opt`` in argv (BasicSR parses argv again afterwards); returns it."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--force_yml', nargs='+', default=None)
    args, _ = parser.parse_known_args(argv)
    if not args.opt:
        raise SRKDError('usage: -opt OPTION_FILE.yml is required')
    opt = load_yaml(args.opt)
    for entry in args.force_yml or ():
        force_value(opt, entry)
    check_options(opt, is_train)
    return opt


def force_value(opt: dict, entry: str) -> None:
    """Apply one ``--force_yml a:b:c=VALUE`` to ``opt`` as basicsr's parse_options will (same value rules), so
    forced values pass the same checks as the file's. basicsr builds the assignment as code and evaluates list
    values: anything but a plain key path and a literal list is refused here, before it runs."""
    import ast

    from basicsr.utils.options import _postprocess_yml_value

    if entry.count('=') != 1:
        raise SRKDError(f'--force_yml {entry}: write KEY=VALUE with one "=", e.g. train:total_iter=1000')
    keys, value = (part.strip() for part in entry.split('='))
    path = keys.split(':')
    if not all(k and k.replace('_', '').isalnum() for k in path):
        raise SRKDError(f'--force_yml {entry}: the key must be names joined by ":", e.g. train:optim_g:lr')
    if value.startswith('['):
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError) as e:
            raise SRKDError(f'--force_yml {entry}: a list value must be a plain list such as [1, 2]') from e
    node = opt
    for depth, key in enumerate(path[:-1]):
        if not isinstance(node.get(key) if isinstance(node, dict) else None, dict):
            raise SRKDError(f'--force_yml {entry}: the option file has no section {":".join(path[:depth + 1])}')
        node = node[key]
    node[path[-1]] = _postprocess_yml_value(value)
