"""The compat rule (docs/design.md): ``import sr_kd`` changes only what it must. A plain BasicSR SRModel,
trained by basicsr's own train_pipeline on CPU, ends with the same weights and the same log lines with and
without ``import sr_kd`` (the baseline gets only the torchvision stand-in, loaded from its file alone,
since basicsr cannot be imported without one on this stack)."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from kd_util import REPO

SCRIPT = r'''
import importlib.util, sys
mode, opt, root = sys.argv[1:4]
if mode == 'plain':
    spec = importlib.util.spec_from_file_location('tv_standin', sys.argv[4])
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    standin.apply()
else:
    import sr_kd
    sr_kd.load()
assert ('sr_kd' in sys.modules) == (mode == 'sr_kd')
from basicsr.train import train_pipeline
sys.argv = ['train.py', '-opt', opt]
train_pipeline(root)
import random, numpy, torch  # the RNG states the run leaves behind
torch.save({'torch': torch.get_rng_state(), 'python': repr(random.getstate()),
            'numpy': repr(numpy.random.get_state())}, root + '/rng_after.pt')
'''


def _data(tmp_path):
    import cv2
    rng = np.random.default_rng(0)
    for split, n in (('train', 3), ('val', 2)):
        for kind in ('hr', 'lr'):
            (tmp_path / split / kind).mkdir(parents=True)
        for i in range(n):
            yy, xx = np.mgrid[0:32, 0:32]
            img = 127 + 60 * np.sin(xx / (3 + i))[..., None] * np.cos(yy / 5)[..., None]
            img = np.clip(img + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / split / 'hr' / f'{i}.png'), img)
            cv2.imwrite(str(tmp_path / split / 'lr' / f'{i}.png'), cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA))


def _options(tmp_path):
    def ds(split, **kw):
        return {'name': f'tiny_{split}', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / split / 'hr'),
                'dataroot_lq': str(tmp_path / split / 'lr'), 'io_backend': {'type': 'disk'}, **kw}
    return {
        'name': 'plain', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 7,
        'datasets': {'train': ds('train', gt_size=16, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
                                 batch_size_per_gpu=2, dataset_enlarge_ratio=2, prefetch_mode=None),
                     # two validation sets that share a dataset name: both are validated
                     'val_1': ds('val'), 'val_2': ds('val')},
        'network_g': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'upscale': 2},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5},
                  'total_iter': 7, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        # validation every 2 iterations: its data loader draws from torch's RNG, which sr_kd's own models
        # restore but a plain SRModel must not; the run ends mid-epoch (3 batches per epoch)
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 3, 'use_tb_logger': False},
    }


def _train(tmp_path, mode, opt):
    root = tmp_path / mode
    root.mkdir()
    env = {'PATH': '/usr/bin:/bin', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'PYTHONPATH': str(REPO)}
    proc = subprocess.run([sys.executable, '-c', SCRIPT, mode, opt, str(root), str(REPO / 'sr_kd' /
                                                                                  'compat_torchvision.py')],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (mode, proc.stderr[-3000:])
    exp = root / 'experiments' / 'plain'
    log = next(exp.glob('train_plain_*.log')).read_text()
    return exp, _comparable(log, root)


def _comparable(log, root):
    """The log's lines without timestamps, timings and paths (which differ between any two runs)."""
    lines = []
    for ln in log.splitlines():
        ln = re.sub(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ', '', ln)
        ln = re.sub(r'\[eta: [^\]]*\]', '', ln)
        ln = re.sub(r'time \(data\): [\d.e+-]+ \([\d.e+-]+\)', '', ln)
        ln = re.sub(r'Time consumed: .*', '', ln)
        lines.append(ln.replace(str(root), 'ROOT'))
    text = '\n'.join(lines)
    # the environment header (versions, banner) before the options dump
    return text[text.index('name: plain'):]


@pytest.mark.slow
def test_plain_srmodel_is_identical_with_and_without_import_sr_kd(tmp_path):
    _data(tmp_path)
    opt = tmp_path / 'plain.yml'
    opt.write_text(yaml.safe_dump(_options(tmp_path), sort_keys=False))
    exp_a, log_a = _train(tmp_path, 'plain', str(opt))
    exp_b, log_b = _train(tmp_path, 'sr_kd', str(opt))
    assert log_a == log_b
    assert log_a.count('Validation tiny_val') == 8  # both sets at 2, 4, 6 and after the end
    rng_a, rng_b = (torch.load(e.parents[1] / 'rng_after.pt', weights_only=True) for e in (exp_a, exp_b))
    assert torch.equal(rng_a['torch'], rng_b['torch']) and rng_a['python'] == rng_b['python']
    assert rng_a['numpy'] == rng_b['numpy']
    for name in ('net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth'):
        a = torch.load(exp_a / 'models' / name, weights_only=True)['params']
        b = torch.load(exp_b / 'models' / name, weights_only=True)['params']
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    state_a = torch.load(exp_a / 'training_states' / '6.state', weights_only=True)
    state_b = torch.load(exp_b / 'training_states' / '6.state', weights_only=True)
    assert state_a['iter'] == state_b['iter'] == 6 and state_a['epoch'] == state_b['epoch']


def _standin():
    import importlib.util
    import pytest
    import torchvision
    if not torchvision.__version__.endswith('+sr_kd_standin'):
        pytest.skip('a real torchvision is installed here')
    assert importlib.util.find_spec('torchvision') is not None  # probing libraries get an answer
    return torchvision


def test_torchvision_standin_computes_as_torchvision():
    _standin()
    from torchvision.transforms.functional import rgb_to_grayscale
    from torchvision.utils import make_grid
    gray = torch.arange(25.).view(1, 5, 5)
    assert torch.equal(make_grid(gray), gray.expand(3, 5, 5))  # one channel becomes three
    batch = torch.rand(3, 1, 4, 4)
    grid = make_grid(batch, nrow=2, padding=1)
    assert grid.shape == (3, 2 * 5 + 1, 2 * 5 + 1) and torch.equal(grid[:, 1:5, 6:10], batch[1].expand(3, 4, 4))
    img = torch.tensor([[[200]], [[100]], [[50]]], dtype=torch.uint8)
    y = rgb_to_grayscale(img)
    assert y.dtype == torch.uint8 and int(y) == int(0.2989 * 200 + 0.587 * 100 + 0.114 * 50)


def test_dcn_archs_fail_with_the_clear_error():
    """The stand-in's version sends basicsr's arch_util to torchvision.ops.deform_conv2d (>= 0.9.0), which
    says what is missing, instead of to basicsr's own uncompiled CUDA extension."""
    import pytest
    _standin()
    from basicsr.archs.arch_util import DCNv2Pack
    dcn = DCNv2Pack(4, 4, 3, padding=1)
    with pytest.raises(RuntimeError, match='deformable convolution .DCN. needs a working torchvision'):
        dcn(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8))


def _plain_model(tmp_path):
    from basicsr.models.sr_model import SRModel
    opt = {'num_gpu': 0, 'is_train': False, 'dist': False, 'scale': 2,  # no 'rank': only parse_options sets it
           'network_g': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2},
           'path': {'pretrain_network_g': None, 'models': str(tmp_path), 'training_states': str(tmp_path)}}
    model = SRModel(opt)
    model.optimizers, model.schedulers = [torch.optim.Adam(model.net_g.parameters())], []
    return model


def test_basicsr_model_methods_outside_the_pipeline(tmp_path, caplog):
    """save_training_state without opt['rank'] (was a KeyError after net_g was written), save_network with
    several networks and keys (one was silently dropped), load_network(strict=False) logs the keys that
    differ (it logged nothing)."""
    import logging

    import pytest
    model = _plain_model(tmp_path)
    model.save_training_state(epoch=0, current_iter=3)
    assert torch.load(tmp_path / '3.state', weights_only=True)['iter'] == 3
    other = torch.nn.Conv2d(1, 1, 1)
    model.save_network([model.net_g, other], 'two', 3, param_key=['params', 'params_other'])
    saved = torch.load(tmp_path / 'two_3.pth', weights_only=True)
    assert set(saved) == {'params', 'params_other'} and set(saved['params_other']) == {'weight', 'bias'}
    with pytest.raises(AssertionError, match='lengths of net and param_key'):
        model.save_network([model.net_g, other], 'bad', 3, param_key='params')

    sd = {k: v for k, v in model.net_g.state_dict().items() if not k.startswith('conv_last')}
    torch.save({'params': sd}, tmp_path / 'partial.pth')
    logger = logging.getLogger('basicsr')
    logger.propagate, was = True, logger.propagate
    try:
        with caplog.at_level(logging.WARNING, logger='basicsr'):
            model.load_network(model.net_g, str(tmp_path / 'partial.pth'), strict=False)
    finally:
        logger.propagate = was
    assert 'Current net - loaded net:' in caplog.text and 'conv_last.weight' in caplog.text
