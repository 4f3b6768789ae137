"""Repairs of basicsr 1.4.2 that keep every BasicSR model's results identical; applied by ``sr_kd.load()``.

The rule (docs/design.md, "The compat rule"): what ``import sr_kd`` changes for every model may only make
basicsr work on today's stack or refuse what is unsafe; a plain BasicSR ``SRModel`` trains to the same
weights and the same log lines with and without ``import sr_kd`` (tests/test_compat_rule.py). Anything
that changes results or behaviour (validation RNG, epoch count, skipping, exact resume, what a failed
run leaves) belongs to sr_kd's own code: ``own_run_behaviour`` (sr_kd/train.py and test.py only) and
``models/own_validation`` (sr_kd's model classes only).

Repairs here, each for a named breakage:
1. torchvision: ``compat_torchvision`` (basicsr imports it; none works with torch 2.13 on CPU).
2. Option files are read with a safe YAML loader (``safe_yaml``): basicsr's full loader runs code.
3. Resume states load on the device that exists (basicsr maps them to CUDA) and with weights_only.
4. OpenCV 4.14+ rejects a float JPEG quality in ``add_jpg_compression``.
5. Distributed training on CPU: gloo instead of NCCL, DDP without device_ids.
6. Networks load with weights_only, and a strict load that does not fit fails in one line naming the
   keys; non-strict loads log and skip exactly as basicsr does.
7. Checkpoints and training states are written through a temporary file and a rename (never torn);
   a failed write raises instead of being ignored; training states also carry the RNG states and a
   model's ``extra_training_state()`` (more data saved, nothing computed differently).
"""
import os
from typing import Optional

import torch

_applied = False


def _patch_options_loader():
    """Repair 2: basicsr's parse_options reads the option file with ``ordered_yaml()[0]``."""
    from basicsr.utils import options

    from sr_kd.safe_yaml import SafeOrderedLoader

    original = options.ordered_yaml

    def ordered_yaml():
        return SafeOrderedLoader, original()[1]

    ordered_yaml.__doc__ = original.__doc__
    options.ordered_yaml = ordered_yaml


def load_resume_state(opt: dict) -> Optional[dict]:
    """basicsr.train.load_resume_state, loading on the device that exists, weights only, and looking in
    the run's root (basicsr looked in ./experiments, wrong when run from another folder)."""
    from basicsr.utils import check_resume, scandir

    from sr_kd.checkpoint import load_checkpoint

    path = None
    if opt['auto_resume']:
        state_dir = os.path.join(opt['root_path'], 'experiments', opt['name'], 'training_states')
        if os.path.isdir(state_dir):
            iters = [int(v.split('.state')[0]) for v in scandir(state_dir, suffix='state', recursive=False)
                     if v.split('.state')[0].isdigit()]
            if iters:
                path = os.path.join(state_dir, f'{max(iters)}.state')
                opt['path']['resume_state'] = path
    elif opt['path'].get('resume_state'):
        path = opt['path']['resume_state']
    if path is None:
        return None
    device = torch.device('cuda', torch.cuda.current_device()) if opt['num_gpu'] != 0 else 'cpu'
    state = load_checkpoint(path, map_location=device)
    check_resume(opt, state['iter'])
    return state


def _patch_resume():
    """Repair 3."""
    import basicsr.train as bt
    bt.load_resume_state = load_resume_state


def _patch_jpeg_quality():
    """Repair 4."""
    from basicsr.data import degradations
    original = degradations.add_jpg_compression

    def add_jpg_compression(img, quality=90):
        return original(img, int(quality))

    degradations.add_jpg_compression = add_jpg_compression


def _patch_distributed():
    """Repair 5."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from basicsr.models import base_model
    from basicsr.utils import dist_util

    original_init = dist_util._init_dist_pytorch

    def _init_dist_pytorch(backend, **kwargs):
        if not torch.cuda.is_available():
            dist.init_process_group(backend='gloo', **kwargs)
        else:
            original_init(backend, **kwargs)

    dist_util._init_dist_pytorch = _init_dist_pytorch

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused)
        elif self.opt['num_gpu'] > 1:
            net = torch.nn.DataParallel(net)
        return net

    base_model.BaseModel.model_to_device = model_to_device


def _patch_load_network():
    """Repair 6: basicsr's load_network step by step, with a weights-only read and a one-line misfit."""
    from basicsr.models import base_model
    from basicsr.utils import get_root_logger

    from sr_kd.checkpoint import check_fits, load_checkpoint

    def load_network(self, net, load_path, strict=True, param_key='params'):
        logger = get_root_logger()
        net = self.get_bare_model(net)
        load_net = load_checkpoint(load_path)
        if param_key is not None:
            if param_key not in load_net and 'params' in load_net:
                param_key = 'params'
                logger.info('Loading: params_ema does not exist, use params.')
            if param_key not in load_net:
                from sr_kd.errors import SRKDError
                raise SRKDError(f'checkpoint {load_path} has no key {param_key!r}; it has: '
                                f'{", ".join(map(str, load_net))}')
            load_net = load_net[param_key]
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        load_net = {(k[7:] if k.startswith('module.') else k): v for k, v in load_net.items()}
        self._print_different_keys_loading(net, load_net, strict)  # logs; non-strict: skips misfit shapes
        if strict:
            check_fits(net, load_net, strict, f'checkpoint {load_path} does not fit {type(net).__name__}')
        net.load_state_dict(load_net, strict=strict)

    base_model.BaseModel.load_network = load_network


def _save(obj, path, what):
    """atomic_save with basicsr's three tries; a write that still fails raises (basicsr ignored it)."""
    import time

    from basicsr.utils import get_root_logger

    from sr_kd.atomic import atomic_save
    for retry in (2, 1, 0):
        try:
            atomic_save(obj, path)
            return
        except OSError as e:
            get_root_logger().warning(f'Save {what} error: {e}, remaining retry times: {retry}')
            if retry == 0:
                raise
            time.sleep(1)


def _patch_saves():
    """Repair 7."""
    from basicsr.models import base_model
    from basicsr.utils.dist_util import get_dist_info, master_only

    from sr_kd.rng import rng_state

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        current_iter = 'latest' if current_iter == -1 else current_iter
        save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        assert len(nets) == len(keys), 'The lengths of net and param_key should be the same.'
        save_dict = {}
        for net_, key in zip(nets, keys):
            sd = self.get_bare_model(net_).state_dict()
            save_dict[key] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in sd.items()}
        _save(save_dict, save_path, 'model')

    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        rank, world = get_dist_info()
        rngs = [rng_state()]
        if world > 1:  # every rank reaches here (basicsr calls it on all); rank 0 writes
            import torch.distributed as dist
            rngs = [None] * world
            dist.all_gather_object(rngs, rng_state())
        if rank != 0:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'rng': rngs}
        state.update(self.extra_training_state() if hasattr(self, 'extra_training_state') else {})
        _save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'), 'training state')

    base_model.BaseModel.save_network = save_network
    base_model.BaseModel.save_training_state = save_training_state


def apply() -> None:
    """Apply every repair once; safe to call again."""
    global _applied
    if _applied:
        return
    from sr_kd import compat_torchvision
    compat_torchvision.apply()
    _patch_options_loader()
    _patch_resume()
    _patch_jpeg_quality()
    _patch_distributed()
    _patch_load_network()
    _patch_saves()
    _applied = True
