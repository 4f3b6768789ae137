"""Faults with real subprocesses and real SIGKILLs: a kill while a checkpoint is written, a kill in the
middle of training and --auto_resume (bit-for-bit equal to an uninterrupted run on CPU), NaN losses
(stop or skip), and checkpoints that carry pickled code."""
import json
import os
import pickle

import pytest
import torch

from kd_util import (assert_one_line_error, child_script, run_cli, run_cli_with_faults, run_until_killed, tiny_options,
                     write_options)
from sr_kd.checkpoint import load_checkpoint


def weights(exp, name):
    return load_checkpoint(str(exp / 'models' / name))['params']


@pytest.mark.slow
def test_kills_then_auto_resume_equal_an_uninterrupted_run(tmp_path):
    """12 iterations, 3 per epoch, checkpoints every 4, validation every 4. Run B is killed while it writes
    training state 8 (net_g_8.pth already complete), resumes from 4, is killed again at iteration 10,
    resumes from 8 and finishes. Its student equals run A's bit for bit: the RNG states and the position
    inside the epoch travel in the training state, and validation does not touch the RNGs."""
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=12))
    a, b = tmp_path / 'a', tmp_path / 'b'
    assert run_cli(['sr_kd/train.py', '-opt', opt], a).returncode == 0
    child = child_script(tmp_path)

    run_until_killed([child, '-opt', opt], b, {'stall_save_iter': 8})
    exp = b / 'experiments' / 'tiny'
    states = sorted(os.listdir(exp / 'training_states'))
    assert [s for s in states if s.endswith('.state')] == ['4.state'], states  # the torn one kept its temp name
    state = load_checkpoint(str(exp / 'training_states' / '4.state'))
    assert state['iter'] == 4 and 'rng' in state
    assert set(weights(exp, 'net_g_4.pth')) == set(weights(a / 'experiments' / 'tiny', 'net_g_4.pth'))

    run_until_killed([child, '-opt', opt, '--auto_resume'], b, {'stall_step_iter': 10})
    log = ''.join(p.read_text() for p in exp.glob('train_tiny_*.log'))
    assert 'Resuming training from epoch: 1, iter: 4' in log
    assert f'Teacher IMDN loaded from {tmp_path / "data" / "teacher.pth"}' in log  # never from the experiment
    assert not list((exp / 'models').glob('net_t_*'))

    proc = run_cli(['sr_kd/train.py', '-opt', opt, '--auto_resume'], b)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Resuming training from epoch: 2, iter: 8' in proc.stderr
    final_a = weights(a / 'experiments' / 'tiny', 'net_g_latest.pth')
    final_b = weights(exp, 'net_g_latest.pth')
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    losses = [(tmp / 'experiments' / 'tiny' / 'losses.jsonl').read_text() for tmp in (a, b)]
    assert losses[0] == losses[1] and len(losses[0].splitlines()) == 12


@pytest.mark.slow
def test_nan_stops_with_term_and_iteration(tmp_path):
    opt = write_options(tmp_path / 'kd.yml', tiny_options(tmp_path, total_iter=12))
    exp = tmp_path / 'experiments' / 'tiny'
    child = child_script(tmp_path)
    env_faults = {'nan_loss': 'OutputDistillLoss', 'nan_iters': [6]}
    proc = run_cli_with_faults(child, opt, tmp_path, env_faults)
    assert_one_line_error(proc, 'l_out = nan at iteration 6', 'nonfinite: skip', 'experiments/tiny/',
                          'last complete checkpoint is iteration 4', '--auto_resume')
    assert sorted(os.listdir(exp / 'models')) == ['net_g_4.pth']
    assert sorted(os.listdir(exp / 'training_states')) == ['4.state']
    assert load_checkpoint(str(exp / 'training_states' / '4.state'))['iter'] == 4
    assert all(torch.isfinite(v).all() for v in weights(exp, 'net_g_4.pth').values())

    # a training state that carries pickled code is refused on resume, and its code never runs
    marker = tmp_path / 'pwned'
    with open(exp / 'training_states' / '8.state', 'wb') as f:
        pickle.dump({'iter': 8, 'x': _Evil(str(marker))}, f, protocol=2)
    proc = run_cli(['sr_kd/train.py', '-opt', opt, '--auto_resume'], tmp_path)
    assert_one_line_error(proc, '8.state is not a plain weights file', 'pickled code')
    assert not marker.exists()


def test_nan_step_skipped_and_counted(tmp_path):
    opt = tiny_options(tmp_path, total_iter=4, nonfinite='skip')
    opt['logger']['save_checkpoint_freq'] = 1
    child = child_script(tmp_path)
    proc = run_cli_with_faults(child, write_options(tmp_path / 'kd.yml', opt), tmp_path,
                               {'nan_loss': 'OutputDistillLoss', 'nan_iters': [3]})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'iteration 3: l_out = nan; step skipped (1 so far)' in proc.stderr
    exp = tmp_path / 'experiments' / 'tiny'
    w2, w3, w4 = (weights(exp, f'net_g_{i}.pth') for i in (2, 3, 4))
    assert all(torch.equal(w2[k], w3[k]) for k in w2)  # the skipped step changed nothing
    assert not all(torch.equal(w3[k], w4[k]) for k in w3)  # and training went on
    assert load_checkpoint(str(exp / 'training_states' / '4.state'))['skipped_steps'] == 1
    assert [json.loads(ln)['iter'] for ln in (exp / 'losses.jsonl').read_text().splitlines()] == [1, 2, 4]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_resume_restores_the_rng_and_skips_the_done_batches_in_the_sampler():
    """The fast check of exact resume (the kill-and-resume test is in the slow tier): after a resume state is
    read, the first epoch's sampler puts back the RNG states saved with it and skips the batches already done."""
    from basicsr.data.data_sampler import EnlargedSampler

    from sr_kd import own_run_behaviour as own
    from sr_kd.rng import rng_state
    own.apply()
    saved = rng_state()
    want = torch.rand(3)  # what the run drew next when it saved
    torch.rand(5)  # a resumed process starts elsewhere
    sampler = EnlargedSampler(list(range(12)), num_replicas=1, rank=0, ratio=1)
    sampler.set_epoch(2)
    whole = list(iter(sampler))
    own._RESUME.update(epoch=2, iter=2 * 12 // 4 + 1, batch=4, rng=[saved])  # epoch 2, one batch done
    resumed = list(iter(sampler))
    assert torch.equal(torch.rand(3), want)
    assert resumed == whole[4:] and not own._RESUME
    assert list(iter(sampler)) == whole  # later epochs are whole again
