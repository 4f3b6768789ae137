"""Property: every option file of the repository (options/, options/students/, options/zoo/), randomly
mutated, either passes the start-up check or fails it with one SRKDError line: never a traceback, never a
late failure the check lets through silently. The files' data and weights are replaced by small stand-ins
made here (random weights of each file's own networks), so this runs without ../shared."""
import copy
import glob
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kd_util import REPO, leaves, mutate, write_images
from sr_kd.errors import SRKDError
from sr_kd.options import check_options, load_yaml

FILES = sorted(glob.glob(str(REPO / 'options' / '**' / '*.yml'), recursive=True))
VALUES = [None, 0, -1, 3, 1.5, True, 'x', 'auto', 'IMDB1', [], {}, [1, 2], {'type': 'L1Loss'}]


@pytest.fixture(scope='module')
def stand_ins(tmp_path_factory):
    """Folders: train (HR images large enough for any file's crop), hr + lr_x2/3/4 (paired sets)."""
    from PIL import Image
    root = tmp_path_factory.mktemp('stand_ins')
    write_images(root / 'train', n=2, size=(200, 200))
    write_images(root / 'hr', n=2, size=(48, 48), seed=1)
    for s in (2, 3, 4):
        (root / f'lr_x{s}').mkdir()
        for f in sorted((root / 'hr').iterdir()):
            with Image.open(f) as im:
                im.resize((48 // s, 48 // s), Image.BICUBIC).save(root / f'lr_x{s}' / f.name)
    return root


def _weights(net_opt, path, key):
    """Random weights of the network ``net_opt`` (Compact for type auto) at ``path``, under ``key``."""
    from basicsr.archs import build_network
    net_opt = dict(net_opt)
    if net_opt.get('type') == 'auto':
        net_opt = {'type': 'Compact', 'num_feat': 16, 'num_conv': 2, 'upscale': 4}
    sd = build_network(net_opt).state_dict()
    torch.save({key: sd} if key else sd, path)
    return str(path)


def with_stand_ins(path, root):
    """The option file at ``path`` with its data and weights replaced by the stand-ins."""
    opt = load_yaml(path)
    opt = copy.deepcopy(opt)
    scale = opt.get('scale', 4)
    for ds in opt['datasets'].values():
        ds.pop('meta_info_file', None)
        ds.pop('filename_tmpl', None)  # the stand-in LR files have the HR files' names
        if ds.get('dataroot_gt') and ds.get('dataroot_lq'):
            ds.update(dataroot_gt=str(root / 'hr'), dataroot_lq=str(root / f'lr_x{scale}'))
        elif 'dataroot_gt' in ds:
            ds['dataroot_gt'] = str(root / 'train')
        elif 'dataroot_lq' in ds:
            ds['dataroot_lq'] = str(root / 'train')
    name = os.path.basename(path)[:-4]
    for net in ('g', 't'):
        if opt['path'].get(f'pretrain_network_{net}') or (net == 't' and 'network_t' in opt):
            key = opt['path'].get(f'param_key_{net}', 'params')
            opt['path'][f'pretrain_network_{net}'] = _weights(opt[f'network_{net}'], root / f'{name}_{net}.pth', key)
    return opt


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.split('/options/')[-1])
def test_every_option_file_passes_with_stand_ins(path, stand_ins, monkeypatch):
    monkeypatch.chdir(REPO)
    check_options(with_stand_ins(path, stand_ins), is_train=not os.path.basename(path).startswith('test_'))


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_option_file_passes_or_fails_in_one_line(stand_ins, data, monkeypatch):
    monkeypatch.chdir(REPO)
    path = data.draw(st.sampled_from(FILES), label='file')
    opt = with_stand_ins(path, stand_ins)
    for _ in range(data.draw(st.integers(1, 2), label='mutations')):
        paths = list(leaves(opt))
        where = data.draw(st.sampled_from(paths), label='path')
        action = data.draw(st.sampled_from(['delete', 'rename', 'typo', 'replace']), label='action')
        mutate(opt, where, action, data.draw(st.sampled_from(VALUES), label='value'))
    try:
        check_options(opt, is_train=not os.path.basename(path).startswith('test_'))
    except SRKDError as e:
        assert str(e).strip() and '\n' not in str(e), str(e)
