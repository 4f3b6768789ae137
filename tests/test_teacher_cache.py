"""Offline teacher (distill.teacher: offline): the cached targets are the online teacher's, each crop reads
its own window turned as the crop was, the cache key follows everything the targets depend on, a killed
build is never read, and bad options fail before the first iteration in one line."""
import os

import numpy as np
import pytest
import torch

from kd_util import assert_one_line_error, build_in_process, make_teacher, run_cli, tiny_options, write_images, \
    write_options
from sr_kd.distill import teacher_cache
from sr_kd.distill.teacher import run_teacher
from sr_kd.losses.feature_stats import stat_map
from sr_kd.ops.matlab_resize import bicubic_lr
from sr_kd.image_io import read_rgb_uint8


def _offline_opt(tmp_path, **distill):
    opt = tiny_options(tmp_path, name='offline')
    opt['distill'].update(teacher='offline', teacher_cache=str(tmp_path / 'cache'), **distill)
    return opt


def _model(tmp_path, opt, steps=0):
    return build_in_process(write_options(tmp_path / 'opt.yml', opt), tmp_path / 'root', steps=steps)


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_offline_targets_equal_the_online_teacher_on_whole_images(tmp_path, precision):
    """At either teacher precision (``auto`` picks bf16 on a CPU with bf16 instructions), the cache holds what
    the online teacher computes at that precision."""
    model = _model(tmp_path, _offline_opt(tmp_path, teacher_precision=precision))
    assert (model.t_dtype is None) == (precision == 'fp32')
    cache = model.teacher_cache
    assert cache is not None and len(cache.stems) == 3
    for path in cache.stems:
        hr = read_rgb_uint8(path)
        x = torch.from_numpy(bicubic_lr(hr, 2).transpose(2, 0, 1).copy()).float().div(255)[None]
        model.taps_t.clear()
        online = run_teacher(model.net_t, x, model.t_dtype)
        feats = [f.float() for f in model.taps_t.outputs]
        sr, maps = cache._arrays(path)
        # float16 storage: half a unit in the last place of values below 2 is <= 2**-11 * 2 ~ 1e-3
        np.testing.assert_allclose(np.asarray(sr, np.float32), online[0].numpy(), rtol=0, atol=1e-3)
        assert np.abs(np.asarray(sr, np.float32) - online[0].numpy()).mean() < 2e-4
        for i, f in enumerate(feats):  # maps are float32: equal to rounding
            np.testing.assert_allclose(maps[i], stat_map(f, 'pow_mean', 2)[0].numpy(), rtol=1e-5, atol=1e-7)


def test_each_crop_reads_its_window_turned_as_the_crop(tmp_path):
    """The dataset's crop record (top, left, hflip, vflip, rot90) locates its HR patch exactly (basicsr's
    cv2 flips against our tensor flips), and the teacher targets come through the same window and turn."""
    from basicsr.data import build_dataset
    opt = _offline_opt(tmp_path)
    model = _model(tmp_path, opt)
    ds = build_dataset(dict(opt['datasets']['train'], phase='train', scale=2))
    seen = set()
    torch.manual_seed(0)
    for i in range(40):
        item = ds[i % len(ds)]
        top, left, hf, vf, rot = item['crop'].tolist()
        seen.add((hf, vf, rot))
        hr = torch.from_numpy(read_rgb_uint8(item['gt_path']).transpose(2, 0, 1).copy()).float().div(255)
        window = hr[:, top * 2:top * 2 + 16, left * 2:left * 2 + 16]
        assert torch.equal(teacher_cache._augment(window, hf, vf, rot), item['gt'])
        sr_t, maps = model.teacher_cache.targets([item['gt_path']], item['crop'][None], 8, torch.device('cpu'))
        whole, whole_maps = model.teacher_cache._arrays(item['gt_path'])
        expect = torch.from_numpy(np.asarray(whole[:, top * 2:top * 2 + 16, left * 2:left * 2 + 16], np.float32))
        assert torch.equal(sr_t[0], teacher_cache._augment(expect, hf, vf, rot))
        m = torch.from_numpy(np.asarray(whole_maps[0, top:top + 8, left:left + 8], np.float32))
        assert torch.equal(maps['pow_mean_p2'][0][0], teacher_cache._augment(m, hf, vf, rot))
    assert len(seen) >= 6  # most of the 8 flip/turn combinations were exercised


def test_offline_training_logs_each_term(tmp_path):
    model = _model(tmp_path, _offline_opt(tmp_path), steps=2)
    assert {'l_pix', 'l_fs', 'l_out'} <= set(model.log_dict)
    assert all(np.isfinite(v) for v in model.log_dict.values())
    assert model.taps_t.outputs == [None]  # the teacher did not run in the step


def test_a_faded_map_term_reads_no_maps(tmp_path):
    """Offline, once the statistic-map term has faded while the output term stays on, a step reads only the
    teacher's SR from the cache, not its maps."""
    opt = _offline_opt(tmp_path, fade=[0, 1])
    for t in opt['train']['distill_opts']:
        if t['name'] == 'out':
            t['fade'] = False
    model = _model(tmp_path, opt)
    read, targets = [], model.teacher_cache.targets

    def spy(*args, **kwargs):
        sr_t, maps = targets(*args, **kwargs)
        read.append(maps)
        return sr_t, maps
    model.teacher_cache.targets = spy
    batch = _batch_of(model, opt)
    model.feed_data(batch)
    model.optimize_parameters(0)  # fs at full weight: its maps are read
    model.feed_data(batch)
    model.optimize_parameters(2)  # fs faded out: none
    assert [bool(maps) for maps in read] == [True, False]
    assert model.log_dict['l_fs'] == 0 and model.log_dict['l_out'] > 0


def _batch_of(model, opt):
    from basicsr.data import build_dataset
    ds = build_dataset(dict(opt['datasets']['train'], phase='train', scale=2))
    items = [ds[0], ds[1]]
    return {k: torch.stack([it[k] for it in items]) if torch.is_tensor(items[0][k]) else [it[k] for it in items]
            for k in ('lq', 'gt', 'crop', 'gt_path')}


def _key(opt, paths, taps=('IMDB2',), specs=('pow_mean_p2',)):
    return teacher_cache.cache_key(opt, paths, list(taps), list(specs), None)


def test_cache_key_follows_teacher_data_and_taps(tmp_path):
    opt = tiny_options(tmp_path)
    folder = tmp_path / 'data' / 'train'
    paths = sorted(str(p) for p in folder.iterdir())
    base = _key(opt, paths)
    assert _key(opt, paths) == base
    assert _key(opt, paths, taps=('IMDB1',)) != base
    assert _key(opt, paths, specs=('pow_mean_p4',)) != base
    assert _key(opt, paths[:2]) != base
    other = dict(opt, path=dict(opt['path'], pretrain_network_t=make_teacher(tmp_path / 't2.pth', seed=1)))
    assert _key(other, paths) != base
    write_images(tmp_path / 'changed', n=3, seed=5)  # same names, other pixels
    assert _key(opt, sorted(str(p) for p in (tmp_path / 'changed').iterdir())) != base


def test_a_killed_build_is_rebuilt_never_read(tmp_path, monkeypatch):
    opt = _offline_opt(tmp_path)
    calls = {'n': 0}
    real_save = np.save

    def dying_save(path, arr):  # the build is killed after its first file
        calls['n'] += 1
        if calls['n'] == 2:
            raise KeyboardInterrupt
        real_save(path, arr)

    monkeypatch.setattr(teacher_cache.np, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt):
        _model(tmp_path, opt)
    monkeypatch.setattr(teacher_cache.np, 'save', real_save)
    left = os.listdir(tmp_path / 'cache')
    assert len(left) == 1 and '.partial-' in left[0]  # only the partial folder, no cache under the key
    model = _model(tmp_path, opt)
    assert teacher_cache.is_complete(model.teacher_cache.folder, os.path.basename(model.teacher_cache.folder))
    assert not any('.partial-' in n for n in os.listdir(tmp_path / 'cache') if str(os.getpid()) not in n)
    os.remove(os.path.join(model.teacher_cache.folder, '00001_sr.npy'))  # damaged by hand: rebuilt, not read
    model = _model(tmp_path, opt)
    assert os.path.isfile(os.path.join(model.teacher_cache.folder, '00001_sr.npy'))
    # cut short (a full disk while copying a cache, `head -c`): rebuilt too, not a crash at iteration 1
    sr = os.path.join(model.teacher_cache.folder, '00001_sr.npy')
    whole = os.path.getsize(sr)
    os.truncate(sr, whole // 2)
    model = _model(tmp_path, opt)
    assert os.path.getsize(sr) == whole


def test_offline_with_a_full_feature_term_fails_before_training(tmp_path):
    opt = _offline_opt(tmp_path)
    opt['train']['distill_opts'].append({'type': 'FitNetLoss', 'name': 'fitnet', 'loss_weight': 1.0})
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'o.yml', opt)], tmp_path / 'root')
    assert_one_line_error(proc, 'l_fitnet (FitNetLoss)', 'distill.teacher: online')
    assert not (tmp_path / 'cache').exists()


def test_a_cache_of_another_teacher_fails_before_training(tmp_path):
    opt = _offline_opt(tmp_path)
    model = _model(tmp_path, opt)
    other = _offline_opt(tmp_path)
    other['path']['pretrain_network_t'] = make_teacher(tmp_path / 'other.pth', seed=3)
    other['distill']['teacher_cache'] = model.teacher_cache.folder  # one cache, of the first teacher
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'o.yml', other)], tmp_path / 'root')
    assert_one_line_error(proc, 'another teacher', 'teacher.pth')


def test_cache_teacher_command_builds_what_training_reads(tmp_path, monkeypatch):
    opt = _offline_opt(tmp_path)
    del opt['distill']['teacher_cache']  # the default place, beside the experiments
    path = write_options(tmp_path / 'o.yml', opt)
    proc = run_cli(['-m', 'sr_kd.cli', 'cache-teacher', '-opt', path], tmp_path / 'root')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'teacher cache ready' in proc.stdout and '(3 images)' in proc.stdout
    built = os.listdir(tmp_path / 'root' / 'experiments' / 'teacher_cache')
    assert len(built) == 1

    def no_build(*args, **kwargs):
        raise AssertionError('training rebuilt the cache the command had built')

    monkeypatch.setattr(teacher_cache, 'build', no_build)
    model = _model(tmp_path, opt, steps=1)
    assert os.path.basename(model.teacher_cache.folder) == built[0]


def test_cache_teacher_refuses_an_online_option_file(tmp_path):
    path = write_options(tmp_path / 'o.yml', tiny_options(tmp_path))
    proc = run_cli(['-m', 'sr_kd.cli', 'cache-teacher', '-opt', path], tmp_path / 'root')
    assert_one_line_error(proc, 'distill.teacher: offline')


def test_an_unreadable_training_image_is_left_out_of_the_cache(tmp_path):
    opt = _offline_opt(tmp_path)
    (tmp_path / 'data' / 'train' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
    model = _model(tmp_path, opt, steps=1)  # corrupt_images: skip (the default) for the dataset and the cache
    assert len([p for p, stem in model.teacher_cache.stems.items() if stem]) == 3
    assert np.isfinite(model.log_dict['l_out'])


def test_flip_psnr_measures_how_far_the_teacher_is_from_equivariant():
    """Nearest upsampling commutes with every flip and turn (inf dB); a conv with a one-sided kernel does not."""
    from torch import nn
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert teacher_cache.flip_psnr(nn.Upsample(scale_factor=2, mode='nearest'), x) == float('inf')
    shift = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        shift.weight.zero_()
        for c in range(3):
            shift.weight[c, c, 1, 2] = 1.0  # each pixel takes its right-hand neighbour
    db = teacher_cache.flip_psnr(lambda t: shift(t).detach(), x)
    assert 5 < db < 20


@pytest.mark.parametrize('turns', [True, False])
def test_a_teacher_that_is_not_equivariant_is_said_when_crops_are_turned(tmp_path, caplog, turns):
    """The cache turns the teacher's output with the crop: with flips on, a random teacher (far from
    equivariant) gets one warning line naming its figure and the fix; without flips, none."""
    import logging
    opt = _offline_opt(tmp_path)
    opt['datasets']['train'].update(use_hflip=turns, use_rot=turns)
    log = logging.getLogger('basicsr')  # basicsr's logger does not propagate to caplog's root
    level = log.level  # and other tests may leave it (or the root it defers to) above WARNING
    log.setLevel(logging.INFO)
    log.addHandler(caplog.handler)
    try:
        model = _model(tmp_path, opt)
    finally:
        log.removeHandler(caplog.handler)
        log.setLevel(level)
    assert model.teacher_cache.flip_psnr < teacher_cache.FLIP_WARN_DB
    said = [r.getMessage() for r in caplog.records if 'not equivariant' in r.getMessage()]
    assert len(said) == (1 if turns else 0)
    if turns:
        assert f'{model.teacher_cache.flip_psnr:.1f} dB' in said[0] and 'use_hflip: false' in said[0]


def test_a_cache_that_cannot_fit_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """A full disk was found half-way through the images (1080p frames: ~190 MB each); the size reckoned
    before the build is what it writes, and a cache that cannot fit is refused with nothing written."""
    import json
    import shutil
    from collections import namedtuple
    model = _model(tmp_path, _offline_opt(tmp_path))
    folder = model.teacher_cache.folder
    written = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith('.npy'))
    with open(os.path.join(folder, teacher_cache.MANIFEST)) as f:
        manifest = json.load(f)
    paths, whole_input, _ = teacher_cache.dataset_source(model.opt['datasets']['train'])
    needed = teacher_cache.needed_bytes(paths, whole_input, 2, len(manifest['specs']) * manifest['levels'])
    assert written - 2 * 128 * len(paths) <= needed <= written  # .npy headers: 128 bytes a file
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(shutil, 'disk_usage', lambda path: usage(10 ** 6, 10 ** 6 - 100, 100))
    opt = _offline_opt(tmp_path)
    opt['distill']['teacher_cache'] = str(tmp_path / 'small_disk')
    with pytest.raises(teacher_cache.SRKDError, match=r'the offline teacher cache needs about .* MB in .*small_disk, '
                                                      r'which has 0.0 MB free'):
        _model(tmp_path, opt)
    assert not os.listdir(tmp_path / 'small_disk')
