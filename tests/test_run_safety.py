"""A failed or interrupted training run loses nothing and says what it left; two runs of one name never mix;
`nonfinite: skip` cannot end in untrained weights; no checkpoint with NaN weights is written or used;
an option file cannot run code. Real subprocesses, real signals."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kd_util import (CHILD, REPO, assert_one_line_error, cli_env, interrupt_at, run_cli, run_until_killed, tiny_options,
                     write_options)

# kd_util's fault-hook child plus one hook: nan_weights_iter fills the student's first weight with NaN
# after that iteration's step.
EXTRA = r'''
real_step2 = SRKDModel.optimize_parameters
def optimize_parameters2(self, current_iter):
    real_step2(self, current_iter)
    if current_iter == faults.get('nan_weights_iter'):
        with torch.no_grad():
            next(self.get_bare_model(self.net_g).parameters()).fill_(float('nan'))
SRKDModel.optimize_parameters = optimize_parameters2

import errno, sr_kd.atomic
real_atomic_save = sr_kd.atomic.atomic_save
def atomic_save(obj, path):
    if path.endswith(f"net_g_{faults.get('enospc_iter')}.pth"):
        raise OSError(errno.ENOSPC, 'No space left on device', path)
    return real_atomic_save(obj, path)
sr_kd.atomic.atomic_save = atomic_save
'''


def child(folder):
    path = Path(folder) / 'faulty_train2.py'
    marker = 'from sr_kd.entry import run_pipeline'
    path.write_text(CHILD.replace(marker, EXTRA + marker))
    return str(path)


def run_child(script, opt, root, faults, args=()):
    env = dict(cli_env(root), SRKD_FAULTS=json.dumps(faults))
    return subprocess.run([sys.executable, script, '-opt', opt, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


def test_failure_before_first_checkpoint_keeps_the_logs(tmp_path):
    """NaN at iteration 3, checkpoints every 4: the log, losses.jsonl and the option copy stay (the old code
    deleted the whole experiment folder and claimed the last checkpoint was intact)."""
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=8))
    proc = run_child(child(tmp_path), opt, tmp_path, {'nan_loss': 'OutputDistillLoss', 'nan_iters': [3]})
    line = assert_one_line_error(proc, 'l_out = nan at iteration 3', 'experiments/tiny/', 'losses.jsonl',
                                 'no checkpoint was saved')
    assert 'intact' not in line
    exp = tmp_path / 'experiments' / 'tiny'
    logs = list(exp.glob('train_tiny_*.log'))
    assert len(logs) == 1 and 'l_out = nan at iteration 3' not in logs[0].read_text()  # the log as written
    assert [json.loads(ln)['iter'] for ln in (exp / 'losses.jsonl').read_text().splitlines()] == [1, 2]
    assert not (exp / 'models').exists() and not (exp / 'training_states').exists()  # empty: removed


def test_skip_limit_stops_a_run_that_skips_most_steps(tmp_path):
    """19 of 20 steps NaN with nonfinite: skip used to end with exit 0; now the 4th skip stops it."""
    o = tiny_options(tmp_path, total_iter=20, nonfinite='skip')
    o['logger']['save_checkpoint_freq'] = 2
    opt = write_options(tmp_path / 'kd.yml', o)
    proc = run_child(child(tmp_path), opt, tmp_path, {'nan_loss': 'OutputDistillLoss',
                                                      'nan_iters': list(range(2, 21))})
    assert_one_line_error(proc, '4 of 5 steps had a NaN/inf loss', 'nonfinite_max_share = 0.1',
                          'last complete checkpoint is iteration 4')


def test_nonfinite_max_share_is_checked_at_start(tmp_path):
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, nonfinite='skip', nonfinite_max_share=2))
    proc = run_cli(['sr_kd/train.py', '-opt', opt], tmp_path)
    assert_one_line_error(proc, 'train.nonfinite_max_share: 2 is not valid: Input should be less than or equal to 1')
    assert not (tmp_path / 'experiments' / 'tiny').exists()


@pytest.mark.slow
def test_nan_weights_are_never_saved_nor_used(tmp_path):
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=8))
    proc = run_child(child(tmp_path), opt, tmp_path, {'nan_weights_iter': 8})
    assert_one_line_error(proc, 'net_g holds NaN/inf weights', 'at iteration 8', 'not saved',
                          'last complete checkpoint is iteration 4')
    models = tmp_path / 'experiments' / 'tiny' / 'models'
    assert sorted(os.listdir(models)) == ['net_g_4.pth']

    # a checkpoint with NaN weights (written by anything else) is refused by upscale and eval
    sd = torch.load(models / 'net_g_4.pth', weights_only=True)
    next(iter(sd['params'].values()))[0] = float('inf')
    bad = tmp_path / 'bad.pth'
    torch.save(sd, bad)
    images = tmp_path / 'data' / 'val'
    for args in (['upscale', str(images), '-m', str(bad), '-o', str(tmp_path / 'out')],
                 ['eval', '--model', str(bad), '--hr', str(images), '--scale', '2']):
        proc = run_cli(['-m', 'sr_kd.cli', *args], tmp_path)
        assert_one_line_error(proc, 'NaN/inf weights', 'refusing it')
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')


@pytest.mark.slow
def test_two_runs_of_one_name_never_mix(tmp_path):
    """The second run refuses in one line naming the first one's process and touches nothing; once the
    first is killed (kill -9: its lock is freed by the kernel), a run of that name starts normally."""
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=8))
    env = dict(cli_env(tmp_path), SRKD_FAULTS=json.dumps({'stall_step_iter': 2, 'marker': str(tmp_path / 'w')}))
    first = subprocess.Popen([sys.executable, child(tmp_path), '-opt', opt], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (tmp_path / 'w').exists():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        exp = tmp_path / 'experiments'
        before = sorted(os.listdir(exp))
        proc = run_cli(['sr_kd/train.py', '-opt', opt], tmp_path)
        assert_one_line_error(proc, 'experiments/tiny is in use', f'process {first.pid}', 'another name')
        assert sorted(os.listdir(exp)) == before  # nothing archived, nothing written
    finally:
        first.kill()
        first.wait()
    proc = run_cli(['sr_kd/train.py', '-opt', opt, '--auto_resume'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _stalled_training(tmp_path):
    """(child, marker): a 12-iteration run that waits before iteration 6's step, touching ``marker``."""
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=12))
    marker = tmp_path / 'w'
    env = dict(cli_env(tmp_path), SRKD_FAULTS=json.dumps({'stall_step_iter': 6, 'marker': str(marker)}))
    proc = subprocess.Popen([sys.executable, child(tmp_path), '-opt', opt], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, marker


def test_ctrl_c_says_what_was_finished(tmp_path):
    proc, marker = _stalled_training(tmp_path)
    err = interrupt_at(proc, marker)
    assert proc.returncode == 130, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f'sr_kd/train.py: interrupted; kept {tmp_path}/experiments/tiny/'), last
    assert 'last complete checkpoint is iteration 4: continue with ' in last
    assert (tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_4.pth').is_file()
    # the command it prints, typed as it is in a shell without $SR_KD_ROOT or the venv on PATH, continues this
    # run in its folder (it used to start over from iteration 0 under the repository's experiments/)
    again = last.split('continue with ', 1)[1]
    env = {k: v for k, v in cli_env(tmp_path).items() if k != 'SR_KD_ROOT'}
    env['PATH'] = '/usr/bin:/bin'
    done = subprocess.run(['bash', '-c', again], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r'Resuming training from epoch: \d+, iter: 4\.', done.stderr + done.stdout) and (tmp_path / 'experiments' / 'tiny' / 'models' /
                                                       'net_g_12.pth').is_file()


def test_sigterm_ends_like_ctrl_c_with_143_and_frees_the_lock(tmp_path):
    """SIGTERM during training printed nothing and left the lock and a hidden temporary state (issue 27)."""
    import signal
    proc, marker = _stalled_training(tmp_path)
    err = interrupt_at(proc, marker, sig=signal.SIGTERM)
    assert proc.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f'sr_kd/train.py: terminated; kept {tmp_path}/experiments/tiny/'), last
    assert '--auto_resume' in last, last
    exp = tmp_path / 'experiments'
    assert not (exp / '.tiny.lock').exists()
    assert not [p for p in (exp / 'tiny').rglob('*') if p.name.startswith('.') or '.tmp' in p.name]


EVIL = 'name: !!python/object/apply:os.system ["touch {marker}"]\nmodel_type: SRModel\n'


@pytest.mark.parametrize('script', ['sr_kd/train.py', 'sr_kd/test.py'])
def test_option_file_with_python_tag_runs_nothing(tmp_path, script):
    marker = tmp_path / 'pwned'
    opt = tmp_path / 'evil.yml'
    opt.write_text('# from a paper\n' + EVIL.format(marker=marker))
    proc = run_cli([script, '-opt', opt], tmp_path)
    assert_one_line_error(proc, 'evil.yml: line 2: the tag !!python/object/apply:os.system is refused')
    assert not marker.exists()


def test_basicsr_parse_options_reads_safely(tmp_path, monkeypatch):
    """basicsr's own pipeline (parse_options) reads option files with the safe loader once sr_kd is imported;
    ordered mappings and BasicSR's !!float still work."""
    from basicsr.utils.options import parse_options

    marker = tmp_path / 'pwned'
    opt = tmp_path / 'evil.yml'
    opt.write_text(EVIL.format(marker=marker))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt)])
    with pytest.raises(Exception, match='line 1: the tag !!python/object/apply:os.system is refused'):
        parse_options(str(tmp_path), is_train=True)
    assert not marker.exists()

    good = tmp_path / 'good.yml'
    good.write_text('name: x\nnum_gpu: 0\nmanual_seed: 1\nlr: !!float 2e-4\ndatasets: {}\npath: {}\n'
                    'b: 1\na: 2\n')
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(good)])
    parsed, _ = parse_options(str(tmp_path), is_train=False)
    assert parsed['lr'] == 2e-4 and list(parsed)[:6] == ['name', 'num_gpu', 'manual_seed', 'lr', 'datasets', 'path']


@pytest.mark.slow
def test_disk_full_while_saving_says_what_is_left(tmp_path):
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=8))
    proc = run_child(child(tmp_path), opt, tmp_path, {'enospc_iter': 8})
    assert_one_line_error(proc, 'disk full: No space left on device', 'net_g_8.pth', 'experiments/tiny/',
                          'last complete checkpoint is iteration 4')
    models = tmp_path / 'experiments' / 'tiny' / 'models'
    assert sorted(os.listdir(models)) == ['net_g_4.pth']  # nothing torn, no temporary left


def test_train_help_prints_usage(tmp_path):
    proc = run_cli(['sr_kd/train.py', '--help'], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith('usage: python sr_kd/train.py -opt OPTIONS.yml')
    assert '--auto_resume' in proc.stdout and not proc.stderr


def test_two_validation_sets_of_an_srmodel_raise_no_false_warning(tmp_path):
    """basicsr warned 'Multiple validation datasets are *only* supported by SRModel' at every validation of
    sr-kd distill --hr (SRKDModel, against the teacher and the HR), while it validated both."""
    opt = tiny_options(tmp_path)
    opt['datasets']['val_2'] = dict(opt['datasets']['val'], name='tiny_val_2')
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'two_val.yml', opt)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next((tmp_path / 'experiments' / 'tiny').glob('train_tiny_*.log')).read_text()
    assert 'Validation tiny_val_2' in log and 'Validation tiny_val\n' in log
    assert 'only* supported' not in log + proc.stdout + proc.stderr
