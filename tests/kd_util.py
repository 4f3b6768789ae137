"""Helpers of the trust tests (bad input, faults, DDP, report): tiny self-made teachers, image folders
and option files, and the real CLI in a subprocess, so CI needs nothing outside the repository."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_images(folder, n=3, size=(40, 40), seed=0):
    """n smooth-plus-noise RGB PNGs (w x h); returns the folder."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = 127 + 60 * np.sin(xx / (3 + i) + i)[..., None] * np.cos(yy / 5)[..., None]
        img = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f'img{i}.png')
    return folder


def make_teacher(path, num_feat=16, num_modules=2, upscale=2, seed=0):
    """A BasicSR-style checkpoint {'params': state_dict} of a small random IMDN."""
    import torch
    from sr_kd.archs.imdn_arch import IMDN
    torch.manual_seed(seed)
    net = IMDN(num_feat=num_feat, num_modules=num_modules, upscale=upscale)
    torch.save({'params': net.state_dict()}, path)
    return str(path)


def tiny_options(tmp_path, name='tiny', **train):
    """A complete x2 distillation option dict: IMDN 8x1 student, 16x2 teacher, 16 px patches."""
    tmp_path = Path(tmp_path)
    data = tmp_path / 'data'
    if not data.is_dir():
        write_images(data / 'train', n=3)
        write_images(data / 'val', n=1, size=(24, 24), seed=1)
        make_teacher(data / 'teacher.pth')
    opt = {
        'name': name, 'model_type': 'SRKDModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'tiny_train', 'type': 'HROnlyDataset', 'dataroot_gt': str(data / 'train'),
                      'gt_size': 16, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 2, 'prefetch_mode': None},
            'val': {'name': 'tiny_val', 'type': 'HROnlyDataset', 'dataroot_gt': str(data / 'val')}},
        'network_g': {'type': 'IMDN', 'num_feat': 8, 'num_modules': 1, 'upscale': 2},
        'network_t': {'type': 'IMDN', 'num_feat': 16, 'num_modules': 2, 'upscale': 2},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'pretrain_network_t': str(data / 'teacher.pth'), 'param_key_t': 'params', 'strict_load_t': True},
        'distill': {'pairs': [['IMDB1', 'IMDB2']]},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [6], 'gamma': 0.5},
                  'total_iter': 4, 'warmup_iter': -1, 'nonfinite': 'stop',
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
                  'distill_opts': [
                      {'type': 'FeatureStatsLoss', 'name': 'fs', 'stat': 'pow_mean', 'p': 2, 'normalize': True,
                       'loss_weight': 1.0},
                      {'type': 'OutputDistillLoss', 'name': 'out', 'criterion': 'l1', 'loss_weight': 0.5}]},
        'val': {'val_freq': 4, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 4, 'use_tb_logger': False},
    }
    opt['train'].update(train)
    return opt


def write_options(path, opt):
    """Write an option dict as YAML; returns the path as a string."""
    Path(path).write_text(yaml.safe_dump(copy.deepcopy(opt), sort_keys=False))
    return str(path)


def cli_env(root):
    """Environment of a child run: experiments under ``root``, one thread (deterministic, light)."""
    env = dict(os.environ, SR_KD_ROOT=str(root), OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=str(REPO))
    env.pop('WORLD_SIZE', None)
    return env


def run_cli(args, root, timeout=120):
    """Run ``python <args>`` from the repository root (e.g. ['sr_kd/train.py', '-opt', x])."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=cli_env(root), capture_output=True,
                          text=True, timeout=timeout)


def run_cli_with_faults(child, opt, root, faults):
    """Run the fault-hook stand-in ``child`` (``child_script``) on option file ``opt`` with ``faults``."""
    import json
    env = dict(cli_env(root), SRKD_FAULTS=json.dumps(faults))
    return subprocess.run([sys.executable, child, '-opt', opt], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)


def assert_one_line_error(proc, *fragments):
    """Exit status 2, no traceback, and stderr ends with the one error line, containing every fragment
    (log lines may come before it once BasicSR's logger is up)."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert 'Traceback' not in err, err[-3000:]
    errors = [ln for ln in err.splitlines() if ': error: ' in ln]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err[-3000:]
    for frag in fragments:
        assert frag.lower() in errors[0].lower(), (frag, errors[0])
    return errors[0]


# A stand-in for sr_kd/train.py with fault hooks, configured by $SRKD_FAULTS (JSON):
#   stall_save_iter: write half of that iteration's training state, then wait to be killed;
#   stall_step_iter: wait to be killed before that iteration's step;
#   nan_loss, nan_iters, nan_rank: that loss class returns NaN at those iterations (on that rank only);
#   dump_dir: at the end each rank saves its own student and term weights and the wrapper types it saw.
# Waiting points touch `marker` first, so the test kills at a known moment.
CHILD = r'''
import io, json, os, sys, time
faults = json.loads(os.environ.get('SRKD_FAULTS', '{}'))
import torch
import sr_kd
sr_kd.load()
from basicsr.utils.registry import LOSS_REGISTRY
from sr_kd.models.srkd_model import SRKDModel
step = {'iter': 0}

def wait_for_kill():
    open(faults['marker'], 'w').close()
    while True:
        time.sleep(1)

real_save = torch.save
def save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get('iter') == faults.get('stall_save_iter') and 'optimizers' in obj:
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[:len(buf.getvalue()) // 2])
        f.flush()
        wait_for_kill()
    return real_save(obj, f, *args, **kwargs)
torch.save = save

real_step = SRKDModel.optimize_parameters
def optimize_parameters(self, current_iter):
    step['iter'] = current_iter
    if current_iter == faults.get('stall_step_iter'):
        wait_for_kill()
    return real_step(self, current_iter)
SRKDModel.optimize_parameters = optimize_parameters

if 'nan_loss' in faults:
    cls = LOSS_REGISTRY.get(faults['nan_loss'])
    real_compute = cls.compute
    on_rank = str(faults.get('nan_rank', os.environ.get('RANK', '0'))) == os.environ.get('RANK', '0')
    cls.compute = lambda self, d: real_compute(self, d) * (
        float('nan') if step['iter'] in faults['nan_iters'] and on_rank else 1)

real_model_save = SRKDModel.save
def model_save(self, epoch, current_iter):
    real_model_save(self, epoch, current_iter)
    if current_iter == -1 and 'dump_dir' in faults:
        types = {k: type(getattr(self, k)).__name__ for k in ('net_g', 'net_t', 'distill')}
        real_save({'params': self.get_bare_model(self.net_g).state_dict(), 'types': types,
                   'distill': self.get_bare_model(self.distill).state_dict()},
                  os.path.join(faults['dump_dir'], f"rank{self.opt['rank']}.pth"))
SRKDModel.save = model_save

from sr_kd.entry import run_pipeline
run_pipeline('train')
if 'dump_dir' in faults:  # what a rank leaves to interpreter exit
    import torch.distributed as dist
    open(os.path.join(faults['dump_dir'], f"rank{os.environ.get('RANK', '0')}.end"), 'w').write(
        'process group alive' if dist.is_initialized() else 'process group destroyed')
'''


def child_script(folder):
    """Write the fault-hook stand-in for sr_kd/train.py into ``folder``; returns its path."""
    path = Path(folder) / 'faulty_train.py'
    path.write_text(CHILD)
    return str(path)


def run_until_killed(args, root, faults, timeout=120):
    """Start ``python <args>`` with fault hooks, wait until it reaches its waiting point, SIGKILL it."""
    import json
    import signal
    import time
    marker = Path(root) / 'waiting'
    marker.unlink(missing_ok=True)
    env = dict(cli_env(root), SRKD_FAULTS=json.dumps({**faults, 'marker': str(marker)}))
    proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f'child exited with {proc.returncode} before its fault point:\n'
                                 f'{proc.stdout.read()[-4000:]}')
        if time.time() > deadline:
            proc.kill()
            raise AssertionError('child never reached its fault point')
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return proc


def build_in_process(opt_path, root, steps=1):
    """The model sr_kd/train.py builds of ``opt_path`` (sr_kd.in_process: the run's own start-up, in this
    process), after ``steps`` optimisation steps on its training loader."""
    from sr_kd.in_process import build_training
    model, train_loader = build_training(opt_path, root)
    batches = iter(train_loader)
    for it in range(1, steps + 1):
        model.feed_data(next(batches))
        model.optimize_parameters(it)
    return model


def interrupt_at(proc, marker, wait=120, sig=None):
    """Ctrl-C (or ``sig``) a child once it has touched ``marker`` (it then waits there); returns its stderr."""
    import signal
    import time
    deadline = time.time() + wait
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT if sig is None else sig)
    return proc.communicate(timeout=60)[1]


# ----- mutations of an option dict (the property tests of tests/test_bad_input.py, test_option_mutations.py)
def leaves(node, prefix=()):
    """Paths to every key and list item of an option dict."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, val in items:
        yield prefix + (key,)
        yield from leaves(val, prefix + (key,))


def mutate(opt, path, action, value):
    """Delete, rename (drop the last letter), cut the first letter of a text, or replace by ``value``."""
    parent = opt
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == 'delete':
        parent.pop(key)
    elif action == 'rename' and isinstance(parent, dict):
        parent[str(key)[:-1] or 'x'] = parent.pop(key)
    elif action == 'typo' and isinstance(parent[key], str) and len(parent[key]) > 1:
        parent[key] = parent[key][1:]
    else:
        parent[key] = copy.deepcopy(value)
