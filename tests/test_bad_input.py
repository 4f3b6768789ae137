"""Bad input fails before the first iteration with one line (exit status 2 from the CLI, no traceback)
and leaves nothing half-written. Most cases run in-process (option checks, data loaders, model, one
step); a few go through the real CLI."""
import logging
import os
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kd_util import (assert_one_line_error, build_in_process, child_script, leaves, make_teacher, mutate, run_cli,
                     run_cli_with_faults, tiny_options, write_images, write_options)
from sr_kd.errors import SRKDError


def fails(tmp_path, opt, *fragments):
    """The tiny run with ``opt`` raises one SRKDError line containing every fragment."""
    path = write_options(tmp_path / 'bad.yml', opt)
    with pytest.raises(SRKDError) as info:
        build_in_process(path, tmp_path)
    msg = str(info.value)
    assert '\n' not in msg, msg
    for frag in fragments:
        assert frag.lower() in msg.lower(), (frag, msg)
    return msg


def test_tiny_run_is_valid(tmp_path):
    """The base of every case below builds and takes a step."""
    build_in_process(write_options(tmp_path / 'ok.yml', tiny_options(tmp_path)), tmp_path)


def test_image_names_that_look_like_numbers_are_names(tmp_path):
    """sr-kd distill held out a photograph named 1e3.png as exclude: [1e3], and the check for numbers written
    as text refused its own option file after the teacher timing ('1e3' is text to YAML: write 1.0e3)."""
    opt = tiny_options(tmp_path)
    train = opt['datasets']['train']
    for i, name in enumerate(['1e3', '2E5', '7e-1']):
        os.rename(os.path.join(train['dataroot_gt'], f'img{i}.png'), os.path.join(train['dataroot_gt'], f'{name}.png'))
    train.update(images=['1e3', '2E5', '7e-1'], exclude=['1e3'])
    model = build_in_process(write_options(tmp_path / 'names.yml', opt), tmp_path)
    assert model.opt['datasets']['train']['exclude'] == ['1e3']


@pytest.mark.parametrize('section, key, value, fragments', [
    ('network_g', 'type', 'IMDM', ['unknown network_g type', 'did you mean: IMDN']),
    ('network_t', 'type', 'imdn', ['unknown network_t type', 'IMDN']),
    ('train', 'pixel_opt', {'type': 'L1Los'}, ['unknown train.pixel_opt type', 'L1Loss']),
    ('network_g', 'num_feet', 8, ['network_g', 'num_feet']),
])
def test_unknown_names(tmp_path, section, key, value, fragments):
    opt = tiny_options(tmp_path)
    opt[section][key] = value
    fails(tmp_path, opt, *fragments)


@pytest.mark.parametrize('where, key, value, fragments', [
    ('val', 'save_imgs', False, ['val.save_imgs is not an option', 'did you mean: save_img']),
    ('logger', 'use_tb_loger', True, ['logger.use_tb_loger is not an option', 'use_tb_logger']),
    ('val.metrics.psnr', 'crop_boarder', 4, ['val.metrics.psnr.crop_boarder is not an option', 'crop_border']),
    ('val.metrics.psnr', 'crop_border', 'four', ['val.metrics.psnr.crop_border must be a whole number']),
    ('train.optim_g', 'lr', '5e-4', ["train.optim_g.lr: '5e-4' is text to YAML", 'write 5.0e-4']),
    ('train.optim_g', 'lr', 'fast', ["train.optim_g.lr must be a number >= 0, not 'fast'"]),
    ('', 'num_gpu', 64, ['num_gpu: 64, but torch sees', 'num_gpu: 0 (CPU) or auto']),
])
def test_mistakes_that_failed_after_work_started_are_refused_first(tmp_path, where, key, value, fragments):
    """Each of these trained or built datasets first, then ended in a KeyError, an assertion or a Python
    message ('<=' not supported between instances of 'float' and 'str')."""
    opt = tiny_options(tmp_path)
    section = opt
    for part in filter(None, where.split('.')):
        section = section[part]
    section[key] = value
    msg = fails(tmp_path, opt, *fragments)
    assert 'instances of' not in msg and 'operand' not in msg


def test_a_key_of_ones_own_beside_basicsrs_passes(tmp_path):
    """Only near misses of BasicSR's keys are typos: a fork's or one's own key far from them passes."""
    opt = tiny_options(tmp_path)
    opt['val']['max_minibatch'] = 3
    opt['logger']['project_note'] = 'mine'
    build_in_process(write_options(tmp_path / 'ok.yml', opt), tmp_path)


def test_unknown_distill_loss(tmp_path):
    opt = tiny_options(tmp_path)
    opt['train']['distill_opts'][0]['type'] = 'FeatureStatLoss'
    fails(tmp_path, opt, "train.distill_opts[0].type: 'FeatureStatLoss' is not a distillation loss", 'FeatureStatsLoss')


def test_unknown_module_name(tmp_path):
    opt = tiny_options(tmp_path)
    opt['distill']['pairs'] = [['IMDB_1', 'IMDB2']]
    fails(tmp_path, opt, "student network has no module 'IMDB_1'", 'IMDB1')
    opt['distill']['pairs'] = [['IMDB1', 'IMDB7']]
    fails(tmp_path, opt, "teacher network has no module 'IMDB7'", 'top-level modules')


def test_missing_and_unreadable_teacher(tmp_path):
    opt = tiny_options(tmp_path)
    opt['path']['pretrain_network_t'] = str(tmp_path / 'nope.pth')
    fails(tmp_path, opt, 'teacher checkpoint not found', 'nope.pth')
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint' * 10)
    opt['path']['pretrain_network_t'] = str(garbage)
    fails(tmp_path, opt, 'cannot read checkpoint', 'garbage.pth', 'not a PyTorch weights file')
    opt['path']['pretrain_network_t'] = str(tmp_path / 'data' / 'teacher.pth')
    opt['path']['param_key_t'] = 'params_ema'
    fails(tmp_path, opt, "no key 'params_ema'", 'params')


def test_teacher_checkpoint_of_another_scale_or_arch(tmp_path):
    opt = tiny_options(tmp_path)
    opt['path']['pretrain_network_t'] = make_teacher(tmp_path / 'x3.pth', upscale=3)
    fails(tmp_path, opt, 'does not fit network_t', 'shapes differ', 'upsampler.0.weight (27, 16, 3, 3) vs (12, 16, 3, 3)')
    opt['path']['pretrain_network_t'] = make_teacher(tmp_path / 'wide.pth', num_feat=32)
    fails(tmp_path, opt, 'shapes differ', 'fea_conv.weight (32, 3, 3, 3) vs (16, 3, 3, 3)')
    other = tmp_path / 'other_arch.pth'
    torch.save({'params': {'body.0.weight': torch.zeros(4, 3, 3, 3)}}, other)
    opt['path']['pretrain_network_t'] = str(other)
    fails(tmp_path, opt, 'missing keys: fea_conv.weight', 'unexpected keys: body.0.weight')


def test_student_checkpoint_of_another_arch(tmp_path):
    opt = tiny_options(tmp_path)
    opt['path']['pretrain_network_g'] = opt['path']['pretrain_network_t']  # a 16x2 teacher into an 8x1 student
    fails(tmp_path, opt, 'does not fit IMDN', 'shapes differ')


def test_teacher_and_student_of_different_scales(tmp_path):
    opt = tiny_options(tmp_path)
    opt['network_t']['upscale'] = 3
    opt['path']['pretrain_network_t'] = make_teacher(tmp_path / 'x3.pth', upscale=3)
    fails(tmp_path, opt, 'teacher and student scales differ', 'x3', 'x2')
    opt = tiny_options(tmp_path)
    opt['scale'] = 4
    fails(tmp_path, opt, 'network_g upscale x2 differs from scale: 4')


def test_pairs_with_different_spatial_sizes(tmp_path):
    opt = tiny_options(tmp_path)
    opt['distill']['pairs'] = [['IMDB1', 'upsampler']]
    fails(tmp_path, opt, 'distill.pairs [IMDB1, upsampler]', 'spatial sizes differ', 'student 8x8, teacher 16x16')


def test_missing_and_empty_data_folder(tmp_path):
    opt = tiny_options(tmp_path)
    opt['datasets']['train']['dataroot_gt'] = str(tmp_path / 'nowhere')
    fails(tmp_path, opt, 'datasets.train.dataroot_gt: folder not found', 'nowhere')
    (tmp_path / 'empty').mkdir()
    opt['datasets']['train']['dataroot_gt'] = str(tmp_path / 'empty')
    fails(tmp_path, opt, 'no images in data folder', 'empty')


def test_hr_smaller_than_crop(tmp_path):
    opt = tiny_options(tmp_path)
    small = write_images(tmp_path / 'small', n=2, size=(12, 30))
    opt['datasets']['train']['dataroot_gt'] = str(small)
    fails(tmp_path, opt, 'no usable images', '2 smaller than gt_size=16')
    write_images(small, n=1, size=(20, 20), seed=5)  # img0 is now usable, img1 still 12 px wide
    build_in_process(write_options(tmp_path / 'skip.yml', opt), tmp_path)  # default: skipped
    opt['datasets']['train']['small_images'] = 'error'
    fails(tmp_path, opt, 'img1.png is 12x30, smaller than the crop gt_size=16', 'small_images: skip')


def test_hr_lr_pair_not_matching_the_scale(tmp_path):
    opt = tiny_options(tmp_path)
    gt = write_images(tmp_path / 'gt', n=2, size=(40, 40))
    lq = write_images(tmp_path / 'lq', n=2, size=(20, 20))
    write_images(lq, n=1, size=(19, 20), seed=3)
    opt['datasets']['train'].update(type='PairedImageDataset', dataroot_gt=str(gt), dataroot_lq=str(lq),
                                    io_backend={'type': 'disk'})
    fails(tmp_path, opt, 'datasets.train: HR img0.png is 40x40 but its LR is 19x20', 'must be 38x40')
    write_images(lq, n=1, size=(20, 20))
    build_in_process(write_options(tmp_path / 'ok.yml', opt), tmp_path)
    (lq / 'img1.png').rename(lq / 'other.png')
    fails(tmp_path, opt, 'HR image img1.png has no LR partner img1.png')


def corrupt_files(folder):
    """A file that is not an image and a PNG cut in half, among good images."""
    (folder / 'noise.png').write_bytes(os.urandom(300))
    good = (folder / 'img0.png').read_bytes()
    (folder / 'cut.png').write_bytes(good[:len(good) // 2])


def test_corrupt_image_skip_or_stop(tmp_path, caplog):
    opt = tiny_options(tmp_path)
    corrupt_files(tmp_path / 'data' / 'train')
    basicsr_logger = logging.getLogger('basicsr')  # basicsr's logger does not propagate to caplog's root
    basicsr_logger.addHandler(caplog.handler)
    level = basicsr_logger.level  # an earlier test may have quietened it
    basicsr_logger.setLevel(logging.INFO)
    try:
        model = build_in_process(write_options(tmp_path / 'skip.yml', opt), tmp_path)  # default: skip, warn
    finally:
        basicsr_logger.removeHandler(caplog.handler)
        basicsr_logger.setLevel(level)
    assert model is not None
    warned = [r.getMessage() for r in caplog.records if 'skipping unreadable image' in r.getMessage()]
    assert any('noise.png' in w for w in warned) and any('cut.png' in w for w in warned), warned
    opt['datasets']['train']['corrupt_images'] = 'error'
    fails(tmp_path, opt, 'cannot read image', 'cut.png', 'corrupt_images: skip')


def test_batch_larger_than_an_epoch(tmp_path):
    opt = tiny_options(tmp_path)
    opt['datasets']['train']['batch_size_per_gpu'] = 7  # 3 images x enlarge 2 = 6 samples
    fails(tmp_path, opt, 'a batch of 7 is more than the 6 samples')


def test_yaml_syntax_error_line_and_column(tmp_path):
    from sr_kd.options import load_yaml
    path = tmp_path / 'broken.yml'
    path.write_text('name: x\ntrain:\n  total_iter: 4\n  optim_g: {type: Adam, lr: 1e-3\nlogger: {}\n')
    with pytest.raises(SRKDError, match=r"YAML syntax error at line 5, column 7: did not find expected ','"):
        load_yaml(str(path))


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    """PyYAML keeps the last of two equal keys: a second total_iter silently wins."""
    from sr_kd.options import load_yaml
    path = tmp_path / 'twice.yml'
    path.write_text('name: x\ntrain:\n  total_iter: 4\n  ema_decay: 0\n  total_iter: 400\n')
    with pytest.raises(SRKDError, match=r"line 5: the key 'total_iter' is given twice in one mapping \(first on "
                                        r"line 3\)"):
        load_yaml(str(path))


def test_merge_keys_may_be_overridden(tmp_path):
    """``<<: *base`` then a key of the base is an override, not a duplicate."""
    from sr_kd.options import load_yaml
    path = tmp_path / 'merge.yml'
    path.write_text('base: &b {lr: 1, beta: 2}\nopt:\n  <<: *b\n  lr: 3\n')
    assert dict(load_yaml(str(path))['opt']) == {'lr': 3, 'beta': 2}


def test_alias_bomb_is_refused_before_anything_expands(tmp_path):
    """Nine levels of ten aliases: 1e9 values once written out (basicsr's option dump does that)."""
    from sr_kd.options import load_yaml
    lines = ['name: x', 'l0: &l0 [a, a, a, a, a, a, a, a, a, a]']
    lines += [f'l{i}: &l{i} [{", ".join([f"*l{i - 1}"] * 10)}]' for i in range(1, 9)]
    path = tmp_path / 'bomb.yml'
    path.write_text('\n'.join(lines) + '\n')
    assert path.stat().st_size < 2000
    with pytest.raises(SRKDError, match='aliases expand to more than 100,000 values'):
        load_yaml(str(path))
    proc = run_cli(['sr_kd/train.py', '-opt', path], tmp_path)
    assert_one_line_error(proc, 'alias bomb')
    assert not (tmp_path / 'experiments').exists()


def test_oversized_option_file_is_refused(tmp_path):
    from sr_kd.options import load_yaml
    path = tmp_path / 'big.yml'
    path.write_text('name: x\n' + '# padding\n' * 120_000)
    with pytest.raises(SRKDError, match=r'the file is 1\.1 MiB; an option file is a few KB'):
        load_yaml(str(path))


class _Evil:
    """Unpickling this runs code: it makes a folder."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def evil_checkpoint(path, marker):
    with open(path, 'wb') as f:
        pickle.dump({'params': _Evil(str(marker))}, f, protocol=2)
    return str(path)


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    opt = tiny_options(tmp_path)
    marker = tmp_path / 'pwned'
    opt['path']['pretrain_network_t'] = evil_checkpoint(tmp_path / 'evil.pth', marker)
    fails(tmp_path, opt, 'carries pickled code: posix.mkdir', 'refusing')
    assert not marker.exists()


def test_checkpoint_unpacking_out_of_proportion_is_refused_before_reading(tmp_path):
    """A 66 KB .pth that torch.load reads as 64 MiB of zeros (deflated records; a 3.7 MB one held 1 GiB
    and peaked at 3.2 GB before it was refused): refused from the zip directory, nothing unpacked."""
    import io
    import zipfile

    from sr_kd.checkpoint import load_checkpoint
    buf = io.BytesIO()
    torch.save({'params': {'conv.weight': torch.zeros(2 ** 24)}}, buf)
    bomb = tmp_path / 'small.pth'
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(bomb, 'w', zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(SRKDError, match=r'unpacks to 64 MiB from 0\.06 MiB on disk: a compressed archive out of '
                                        'proportion'):
        load_checkpoint(str(bomb))
    plain = tmp_path / 'plain.pth'
    torch.save({'params': {'conv.weight': torch.zeros(2 ** 24)}}, plain)
    assert load_checkpoint(str(plain))['params']['conv.weight'].numel() == 2 ** 24  # stored: read as before


# ----- the real CLI: exit status 2, one line, no traceback, nothing half-written --------------------
def test_cli_yaml_error(tmp_path):
    path = tmp_path / 'broken.yml'
    path.write_text('name: x\nmodel_type: SRKDModel\n  scale: 2\n')
    assert_one_line_error(run_cli(['sr_kd/train.py', '-opt', path], tmp_path), 'line 3, column 8')
    assert not (tmp_path / 'experiments').exists()


def test_a_failure_during_training_keeps_the_log_and_says_where_the_older_run_is(tmp_path):
    """A NaN at iteration 1 (nonfinite: stop) ends a run after BasicSR made its folder and archived an older run
    of the same name: the new run's log is kept, empty folders go, and the error line says where the log and
    the older run are."""
    older = tmp_path / 'experiments' / 'tiny'
    older.mkdir(parents=True)
    (older / 'keep.txt').write_text('an older run')
    proc = run_cli_with_faults(child_script(tmp_path), write_options(tmp_path / 'kd.yml', tiny_options(tmp_path)),
                               tmp_path, {'nan_loss': 'OutputDistillLoss', 'nan_iters': [1]})
    line = assert_one_line_error(proc, 'l_out = nan at iteration 1', 'experiments/tiny/ with',
                                 'no checkpoint was saved')
    archived = [n for n in os.listdir(tmp_path / 'experiments') if n.startswith('tiny_archived_')]
    assert len(archived) == 1 and f'the previous run is in {tmp_path}/experiments/{archived[0]}/' in line
    assert os.listdir(tmp_path / 'experiments' / archived[0]) == ['keep.txt']
    kept = sorted(os.listdir(older))
    assert kept[0] == 'kd.yml' and kept[-1].startswith('train_tiny_') and kept[-1].endswith('.log'), kept


LATE_CHECKS = {  # each failed once the experiment folder was made, the older run archived and the teacher loaded
    'teacher of another scale': (lambda o, t: o['path'].update(pretrain_network_t=make_teacher(t / 'x3.pth', upscale=3)),
                                 'does not fit network_t'),
    'distill.teacher value': (lambda o, t: o['distill'].update(teacher='ofline'),
                              "distill.teacher: 'ofline' is not valid: Input should be 'online' or 'offline'"),
    'a pair naming a missing module': (lambda o, t: o['distill'].update(pairs=[['IMDB9', 'IMDB2']]),
                                       "student network has no module 'IMDB9'"),
    'pairs of different spatial sizes': (lambda o, t: o['distill'].update(pairs=[['upsampler', 'IMDB2']]),
                                         'spatial sizes differ'),
    'num_pairs: 0': (lambda o, t: o['distill'].update(pairs='auto', num_pairs=0), 'distill.num_pairs: 0 is not valid'),
    'num_pairs above the blocks': (lambda o, t: o['distill'].update(pairs='auto', num_pairs=50),
                                   'num_pairs: 50, but the student has 4 blocks'),
    'level_weights as a string': (lambda o, t: o['train']['distill_opts'][0].update(level_weights='1,2'),
                                  'level_weights'),
    "p: '2'": (lambda o, t: o['train']['distill_opts'][0].update(p='2'), "train.distill_opts[0].p: '2' is not valid"),
    'gt_size not a multiple of the scale': (lambda o, t: o['datasets']['train'].update(gt_size=15),
                                            'gt_size must be a positive multiple of scale 2'),
    'gt_size above every image': (lambda o, t: o['datasets']['train'].update(gt_size=64), 'smaller than gt_size=64'),
    'offline teacher, a term needing features': (
        lambda o, t: (o['distill'].update(teacher='offline'),
                      o['train']['distill_opts'].append({'type': 'FitNetLoss', 'name': 'fit', 'loss_weight': 0.1})),
        'l_fit (FitNetLoss) need the full teacher features'),
    'teacher_cache: 5': (lambda o, t: o['distill'].update(teacher='offline', teacher_cache=5),
                         'distill.teacher_cache: 5 is not valid: Input should be a valid string'),
}


@pytest.mark.parametrize('case', LATE_CHECKS)
def test_checks_that_need_the_built_networks_run_at_start_up(tmp_path, case):
    """The start-up check (what train.py runs before BasicSR makes anything) catches them, in one line."""
    from sr_kd.options import check_options
    change, fragment = LATE_CHECKS[case]
    opt = tiny_options(tmp_path)
    change(opt, tmp_path)
    with pytest.raises(SRKDError) as info:
        check_options(opt)
    assert fragment.lower() in str(info.value).lower() and '\n' not in str(info.value), str(info.value)


def test_a_run_failing_a_start_up_check_leaves_the_older_run_where_it_was(tmp_path):
    """It once archived the finished run of that name first, then failed, and --auto_resume started over."""
    older = tmp_path / 'experiments' / 'tiny'
    (older / 'models').mkdir(parents=True)
    (older / 'models' / 'net_g_4.pth').write_text('a finished run')
    opt = tiny_options(tmp_path)
    LATE_CHECKS['pairs of different spatial sizes'][0](opt, tmp_path)
    assert_one_line_error(run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'bad.yml', opt)], tmp_path),
                          'spatial sizes differ')
    assert os.listdir(tmp_path / 'experiments') == ['tiny'] and os.listdir(older) == ['models']
    assert not (tmp_path / 'tb_logger').exists()


def test_cli_error_with_nothing_written_puts_the_older_run_back(tmp_path):
    """A run whose folder ends up empty gives the name back to the older run it archived."""
    from sr_kd import own_run_behaviour as own
    older = tmp_path / 'experiments' / 'tiny'
    older.mkdir(parents=True)
    (older / 'keep.txt').write_text('an older run')
    archived = str(older) + '_archived_x'
    os.rename(older, archived)
    os.makedirs(older / 'models')
    own._NEW_DIRS.append((str(older), archived))
    assert own.tidy_after_failure() == ''
    assert sorted(os.listdir(tmp_path / 'experiments')) == ['tiny'] and os.listdir(older) == ['keep.txt']


def test_cli_corrupt_image_stop(tmp_path):
    opt = tiny_options(tmp_path)
    corrupt_files(tmp_path / 'data' / 'train')
    opt['datasets']['train']['corrupt_images'] = 'error'
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'c.yml', opt)], tmp_path)
    assert_one_line_error(proc, 'cannot read image', 'corrupt_images: skip')
    assert not (tmp_path / 'experiments').exists()  # found by the start-up check: nothing made


@pytest.mark.slow
def test_forced_values_pass_the_same_checks_before_any_work(tmp_path):
    """--force_yml values skipped every check (a traceback later), and the lock and the resume hint used the
    file's name, not the forced one."""
    path = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path))
    proc = run_cli(['sr_kd/train.py', '-opt', path, '--force_yml', 'datasets:train:batch_size_per_gpu=0'], tmp_path)
    assert_one_line_error(proc, 'datasets.train.batch_size_per_gpu')
    marker = tmp_path / 'ran'
    for entry, says in ((f"train:x=[__import__('os').mkdir('{marker}')]", 'a list value must be a plain list'),
                        ('nosuch:total_iter=5', 'the option file has no section nosuch'),
                        ('train:total_iter=5=6', 'write KEY=VALUE with one "="'),
                        ('train"]; import os; x["a=1', 'the key must be names joined by ":"')):
        assert_one_line_error(run_cli(['sr_kd/train.py', '-opt', path, '--force_yml', entry], tmp_path), says)
    assert not marker.exists() and not (tmp_path / 'experiments').exists()
    proc = run_cli(['sr_kd/train.py', '-opt', path, '--force_yml', 'name=forced', 'train:total_iter=2'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(tmp_path / 'experiments') == ['forced']


@pytest.mark.slow
def test_resuming_with_an_added_term_with_weights_is_one_line(tmp_path):
    """--auto_resume after adding a term with a connector failed with a traceback (state dict, optimizer)."""
    opt = tiny_options(tmp_path)
    assert run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'kd.yml', opt)], tmp_path).returncode == 0
    opt['train']['total_iter'] = 6
    opt['train']['distill_opts'].append({'type': 'FitNetLoss', 'name': 'fit', 'loss_weight': 0.1})
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'kd.yml', opt), '--auto_resume'], tmp_path)
    assert_one_line_error(proc, 'the training state of iteration 4 holds trained weights of the distillation terms '
                          'none', 'now has weights in #3 (l_fs, l_out, l_fit)', 'start a new name')
    assert sorted(os.listdir(tmp_path / 'experiments' / 'tiny' / 'training_states')) == ['4.state']


# ----- property: a mutated option file either runs or fails with one line ---------------------------
_VALUES = [None, 0, -1, 3, 1.5, True, 'x', 'IMDB1', [], {}, [1, 2], {'type': 'L1Loss'}]


@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_options_run_or_fail_in_one_line(tmp_path, data):
    opt = tiny_options(tmp_path)
    for _ in range(data.draw(st.integers(1, 2), label='mutations')):
        paths = list(leaves(opt))
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label='path')
        action = data.draw(st.sampled_from(['delete', 'rename', 'typo', 'replace']), label='action')
        mutate(opt, path, action, data.draw(st.sampled_from(_VALUES), label='value'))
    try:
        build_in_process(write_options(tmp_path / 'mutated.yml', opt), tmp_path)
    except SRKDError as e:
        assert str(e).strip() and '\n' not in str(e), str(e)
