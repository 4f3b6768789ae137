"""Everything needed to run basicsr 1.4.2 on today's torch/torchvision/numpy, in one place.

Imported by ``sr_kd/__init__.py`` before anything imports basicsr. Each repair names the breakage it
fixes (see ../shared/DESIGN.md, "Compatibility layer"). Nothing else in the project patches basicsr.
"""
import importlib
import math
import os
import random
import shutil
import sys
import types

import numpy as np
import torch

_applied = False


def _torchvision_works():
    try:
        import torchvision  # noqa: F401
        import torchvision.utils  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 - a missing or broken (CUDA-only) torchvision: use the stand-in
        for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        return False


def _unavailable(what):
    def fail(*args, **kwargs):
        raise RuntimeError(f'{what} needs a working torchvision, which is not installed '
                           '(sr_kd does not use it; install a torchvision that matches your torch)')
    return fail


def _make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """torchvision.utils.make_grid for what basicsr's tensor2img calls it with (a 4-D batch)."""
    if isinstance(tensor, (list, tuple)):
        tensor = torch.stack(tensor)
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if normalize:
        lo, hi = value_range if value_range is not None else (float(tensor.min()), float(tensor.max()))
        tensor = (tensor.clamp(lo, hi) - lo) / max(hi - lo, 1e-5)
    n, c, h, w = tensor.shape
    if n == 1:
        return tensor[0]
    xmaps = min(nrow, n)
    ymaps = (n + xmaps - 1) // xmaps
    hp, wp = h + padding, w + padding
    grid = tensor.new_full((c, hp * ymaps + padding, wp * xmaps + padding), pad_value)
    for k in range(n):
        y, x = divmod(k, xmaps)
        grid[:, y * hp + padding:y * hp + padding + h, x * wp + padding:x * wp + padding + w] = tensor[k]
    return grid


def _normalize(tensor, mean, std, inplace=False):
    t = tensor if inplace else tensor.clone()
    mean = torch.as_tensor(mean, dtype=t.dtype, device=t.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=t.dtype, device=t.device).view(-1, 1, 1)
    return t.sub_(mean).div_(std)


def _rgb_to_grayscale(img, num_output_channels=1):
    r, g, b = img.unbind(dim=-3)
    gray = (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(dim=-3)
    return gray.expand(img.shape[:-3] + (num_output_channels,) + img.shape[-2:]) if num_output_channels == 3 else gray


def _install_torchvision_standin():
    """Repair 1: basicsr imports torchvision in data, utils and archs; give it the few names it needs."""
    tv = types.ModuleType('torchvision')
    tv.__version__ = '0.0.0+sr_kd_standin'
    tv.__path__ = []
    tv.__file__ = __file__
    utils = types.ModuleType('torchvision.utils')
    utils.make_grid = _make_grid
    transforms = types.ModuleType('torchvision.transforms')
    transforms.__path__ = []
    functional = types.ModuleType('torchvision.transforms.functional')
    functional.normalize = _normalize
    functional.rgb_to_grayscale = _rgb_to_grayscale
    transforms.functional = functional
    models = types.ModuleType('torchvision.models')
    models.__path__ = []
    vgg = types.ModuleType('torchvision.models.vgg')
    def _vgg_attr(name):
        if name.startswith('__'):  # keep inspect/dynamo's module scans working
            raise AttributeError(name)
        return _unavailable('VGG perceptual loss')

    vgg.__getattr__ = _vgg_attr
    models.vgg = vgg
    models.inception_v3 = _unavailable('FID (Inception)')
    ops = types.ModuleType('torchvision.ops')
    ops.deform_conv2d = _unavailable('deformable convolution (DCN)')
    for name, mod in {'torchvision': tv, 'torchvision.utils': utils, 'torchvision.transforms': transforms,
                      'torchvision.transforms.functional': functional,
                      'torchvision.transforms.functional_tensor': functional, 'torchvision.models': models,
                      'torchvision.models.vgg': vgg, 'torchvision.ops': ops}.items():
        sys.modules[name] = mod
        if name != 'torchvision':
            setattr(tv, name.split('.')[1], sys.modules['torchvision.' + name.split('.')[1]])


def _alias_functional_tensor():
    """Repair 1 with a working torchvision: functional_tensor was removed in torchvision 0.17."""
    try:
        importlib.import_module('torchvision.transforms.functional_tensor')
    except ImportError:
        sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
            'torchvision.transforms.functional')


def _patch_resume():
    """Repair 2: resume states load on the actual device, found in the experiment folder."""
    import basicsr.train as bt
    from basicsr.utils import scandir
    from basicsr.utils import check_resume

    def load_resume_state(opt):
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
        # The teacher is never saved with the student: keep loading it from its own path on resume.
        ignore = opt['path'].get('ignore_resume_networks') or []
        opt['path']['ignore_resume_networks'] = list(ignore) + ['network_t']
        from sr_kd.checkpoint import load_checkpoint
        device = torch.device('cuda', torch.cuda.current_device()) if opt['num_gpu'] != 0 else 'cpu'
        state = load_checkpoint(path, map_location=device)
        check_resume(opt, state['iter'])
        _RESUME.clear()
        if 'rng' in state:
            ds = opt['datasets']['train']
            batch = ds['batch_size_per_gpu'] * (1 if opt['dist'] else max(opt['num_gpu'], 1))
            _RESUME.update(epoch=state['epoch'], iter=state['iter'], batch=batch, rng=state['rng'])
        return state

    bt.load_resume_state = load_resume_state


# What the first training epoch after a resume must restore (set by load_resume_state, used once by
# the sampler): the RNG states and the position inside the epoch at the time of the checkpoint.
_RESUME = {}


def rng_state():
    """Python, numpy and torch RNG states in types that ``weights_only=True`` loads."""
    version, keys, gauss = random.getstate()
    kind, mt, pos, has_gauss, cached = np.random.get_state()
    return {'python': [version, list(keys), gauss], 'numpy': [kind, torch.from_numpy(mt.astype(np.int64)),
                                                             pos, has_gauss, cached],
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    version, keys, gauss = state['python']
    random.setstate((version, tuple(keys), gauss))
    kind, mt, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, mt.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def _patch_sampler():
    """Resume continues the data stream where the checkpoint left it: basicsr restarts the saved epoch
    from its first batch with freshly seeded RNGs, so a resumed run saw other crops than an
    uninterrupted one. The epoch's order is a function of (epoch); the RNGs and the batches already
    consumed in it come from the training state."""
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.utils.dist_util import get_dist_info

    original_iter = EnlargedSampler.__iter__

    def __iter__(self):
        indices = list(original_iter(self))
        if _RESUME.get('epoch') != self.epoch:
            return iter(indices)
        pending = dict(_RESUME)
        _RESUME.clear()
        rank, world = get_dist_info()
        if len(pending['rng']) == world:
            set_rng_state(pending['rng'][rank])
        done = pending['iter'] - self.epoch * (self.num_samples // pending['batch'])
        return iter(indices[max(done, 0) * pending['batch']:])

    EnlargedSampler.__iter__ = __iter__


def _patch_validation():
    """Validation leaves the RNGs as it found them (its data loader draws a seed from torch's RNG), so the
    training trajectory does not depend on val_freq and a resumed run matches an uninterrupted one.

    basicsr's loop also leaves ``current_iter`` past total_iter (one step per remaining epoch) and then
    validates once more: the last table read "@ 502 iter" after 500 iterations and repeated the one at
    500. The iteration is clamped to total_iter and a dataset already validated at it is not run again."""
    from basicsr.models import base_model
    original = base_model.BaseModel.validation

    def validation(self, dataloader, current_iter, *args, **kwargs):
        if self.is_train and isinstance(current_iter, int):  # test.py passes the run's name instead
            current_iter = min(current_iter, int(self.opt['train']['total_iter']))
            done = self.__dict__.setdefault('_validated', set())
            key = (dataloader.dataset.opt.get('name'), current_iter)
            if key in done:
                return
            done.add(key)
        state = rng_state()
        try:
            return original(self, dataloader, current_iter, *args, **kwargs)
        finally:
            set_rng_state(state)

    base_model.BaseModel.validation = validation


def _patch_epoch_count():
    """basicsr counts an epoch's iterations with ceil() while the loader drops the last partial batch, so
    a run could stop short of total_iter; and a batch larger than an epoch gives no batch at all (zero
    iterations, reported as success). Count epochs from the loader's real length; refuse an empty one."""
    import basicsr.train as bt

    from sr_kd.errors import SRKDError

    original = bt.create_train_val_dataloader

    def create_train_val_dataloader(opt, logger):
        train_loader, train_sampler, val_loaders, _, total_iters = original(opt, logger)
        if len(train_loader) == 0:
            raise SRKDError(f'datasets.train: a batch of {train_loader.batch_size} is more than the '
                            f'{len(train_loader.sampler)} samples of one epoch per process '
                            '(images x dataset_enlarge_ratio / processes)')
        return train_loader, train_sampler, val_loaders, math.ceil(total_iters / len(train_loader)), total_iters

    bt.create_train_val_dataloader = create_train_val_dataloader


def _patch_jpeg_quality():
    """Repair 3: OpenCV 4.14+ rejects a float JPEG quality in add_jpg_compression."""
    from basicsr.data import degradations
    original = degradations.add_jpg_compression

    def add_jpg_compression(img, quality=90):
        return original(img, int(quality))

    degradations.add_jpg_compression = add_jpg_compression


def _patch_distributed():
    """Repair 4: CPU distributed training (gloo, no cuda.set_device) and DDP without device_ids on CPU."""
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


# Folders made by this run and the older folders basicsr archived to make room (see undo_new_dirs).
_NEW_DIRS = []


def _patch_exp_dirs():
    """Record the experiment/results/tb_logger folders basicsr makes, so a run that fails on bad input
    before its first checkpoint leaves the disk as it found it (no half-written experiment, and the
    previous run's folder not archived away)."""
    import basicsr.train as bt
    from basicsr.utils import misc

    def mkdir_and_rename(path):
        archived = None
        if os.path.exists(path):
            archived = path + '_archived_' + misc.get_time_str()
            print(f'Path already exists. Rename it to {archived}', flush=True)
            os.rename(path, archived)
        os.makedirs(path, exist_ok=True)
        _NEW_DIRS.append((path, archived))

    misc.mkdir_and_rename = mkdir_and_rename
    bt.mkdir_and_rename = mkdir_and_rename


def undo_new_dirs():
    """Remove the folders this run made and put archived ones back; a no-op once a checkpoint exists."""
    while _NEW_DIRS:
        path, archived = _NEW_DIRS.pop()
        shutil.rmtree(path, ignore_errors=True)
        if archived and os.path.isdir(archived):
            os.rename(archived, path)


def _patch_load_network():
    """pretrain_network_g and resumed networks load with weights_only and, when they do not fit, fail
    with one line that names the differing keys or shapes."""
    from basicsr.models import base_model
    from basicsr.utils import get_root_logger

    from sr_kd.checkpoint import check_fits, extract_state_dict, load_checkpoint

    def load_network(self, net, load_path, strict=True, param_key='params'):
        net = self.get_bare_model(net)
        ckpt = load_checkpoint(load_path)
        if param_key and isinstance(ckpt, dict) and param_key not in ckpt and 'params' in ckpt:
            param_key = 'params'
        sd = extract_state_dict(ckpt, param_key)
        check_fits(net, sd, strict, f'checkpoint {load_path} does not fit {type(net).__name__}')
        get_root_logger().info(f'Loading {type(net).__name__} model from {load_path}, param key: {param_key}.')
        net.load_state_dict(sd, strict=strict)

    base_model.BaseModel.load_network = load_network


def _patch_atomic_saves():
    """Checkpoints and training states are written to a temporary file and renamed (never torn)."""
    from basicsr.models import base_model
    from basicsr.utils.dist_util import master_only

    from sr_kd.atomic import atomic_save

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        current_iter = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save_dict = {}
        for net_, key in zip(nets, keys):
            sd = self.get_bare_model(net_).state_dict()
            save_dict[key] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in sd.items()}
        atomic_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))
        _NEW_DIRS.clear()  # the run now holds work worth keeping

    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        rngs = [rng_state()]
        if self.opt['dist']:  # every rank reaches here (basicsr calls it on all); rank 0 writes
            import torch.distributed as dist
            rngs = [None] * dist.get_world_size()
            dist.all_gather_object(rngs, rng_state())
        if self.opt['rank'] != 0:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'rng': rngs,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        state.update(self.extra_training_state() if hasattr(self, 'extra_training_state') else {})
        atomic_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    base_model.BaseModel.save_network = save_network
    base_model.BaseModel.save_training_state = save_training_state


def apply():
    """Apply every repair once; safe to call again."""
    global _applied
    if _applied:
        return
    if _torchvision_works():
        _alias_functional_tensor()
    else:
        _install_torchvision_standin()
    _patch_resume()
    _patch_sampler()
    _patch_epoch_count()
    _patch_validation()
    _patch_jpeg_quality()
    _patch_distributed()
    _patch_exp_dirs()
    _patch_load_network()
    _patch_atomic_saves()
    _applied = True
