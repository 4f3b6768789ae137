"""BasicSR's launcher path on CPU: `torchrun --nproc_per_node=2 sr_kd/train.py -opt X --launcher pytorch`
with gloo. The student and the connectors are in DistributedDataParallel, the teacher is not; both
ranks end with identical weights; only rank 0 writes checkpoints and logs; a NaN on one rank only makes
both ranks skip that step (or they would hang in the next all-reduce)."""
import pytest
import json
import subprocess
import sys

import torch

from kd_util import REPO, child_script, cli_env, tiny_options, write_options
from sr_kd.checkpoint import load_checkpoint


@pytest.mark.slow
def test_two_cpu_processes_with_gloo(tmp_path):
    opt = tiny_options(tmp_path, total_iter=4, nonfinite='skip')
    opt['train']['distill_opts'].append({'type': 'FitNetLoss', 'name': 'fit', 'loss_weight': 0.1})
    opt['logger']['save_checkpoint_freq'] = 2
    opt['val']['val_freq'] = 2
    dump = tmp_path / 'dump'
    dump.mkdir()
    faults = {'dump_dir': str(dump), 'nan_loss': 'FitNetLoss', 'nan_iters': [3], 'nan_rank': 1}
    env = dict(cli_env(tmp_path), SRKD_FAULTS=json.dumps(faults))
    # the stand-in for sr_kd/train.py adds the NaN and a dump of each rank's weights at the end
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           child_script(tmp_path), '-opt', write_options(tmp_path / 'ddp.yml', opt), '--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'iteration 3: a loss on another rank; step skipped (1 so far)' in proc.stderr  # rank 0's view

    ranks = [torch.load(dump / f'rank{r}.pth', weights_only=True) for r in (0, 1)]
    assert ranks[0]['types'] == {'net_g': 'DistributedDataParallel', 'net_t': 'IMDN',
                                 'distill': 'DistributedDataParallel'}
    assert all(torch.equal(ranks[0]['params'][k], ranks[1]['params'][k]) for k in ranks[0]['params'])
    exp = tmp_path / 'experiments'
    assert [p.name for p in exp.iterdir()] == ['tiny']  # no second (archived) experiment from rank 1
    saved = load_checkpoint(str(exp / 'tiny' / 'models' / 'net_g_latest.pth'))['params']
    assert all(torch.equal(saved[k], ranks[0]['params'][k]) for k in saved)
    assert sorted(p.name for p in (exp / 'tiny' / 'models').iterdir()) == [
        'net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth', 'net_kd_2.pth', 'net_kd_4.pth', 'net_kd_latest.pth']
    assert len(list((exp / 'tiny').glob('train_tiny_*.log'))) == 1
    # a live gloo group at interpreter exit can abort a rank after a finished run (exit 1 from torchrun)
    assert [(dump / f'rank{r}.end').read_text() for r in (0, 1)] == ['process group destroyed'] * 2
    iters = [json.loads(ln)['iter'] for ln in (exp / 'tiny' / 'losses.jsonl').read_text().splitlines()]
    assert iters == [1, 2, 4]  # 3 was skipped
    state = load_checkpoint(str(exp / 'tiny' / 'training_states' / '4.state'))
    assert state['skipped_steps'] == 1 and len(state['rng']) == 2 and not torch.equal(state['rng'][0]['torch'], state['rng'][1]['torch'])


@pytest.mark.slow
def test_mhgd_head_is_one_head_on_every_rank(tmp_path):
    """MHGD's graph head trains by its own optimizer, outside DDP: each rank sees other patches, so without
    a broadcast each would freeze a different head and the student would follow different graphs."""
    opt = tiny_options(tmp_path, total_iter=3)
    opt['network_g']['num_modules'] = 2
    opt['distill']['pairs'] = [['IMDB1', 'IMDB1'], ['IMDB2', 'IMDB2']]
    opt['train']['distill_opts'] = [{'type': 'MHGDLoss', 'name': 'mhgd', 'num_head': 2, 'head_iters': 2}]
    opt['logger']['save_checkpoint_freq'] = 3
    opt['val']['val_freq'] = 3
    dump = tmp_path / 'dump'
    dump.mkdir()
    env = dict(cli_env(tmp_path), SRKD_FAULTS=json.dumps({'dump_dir': str(dump)}))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           child_script(tmp_path), '-opt', write_options(tmp_path / 'ddp.yml', opt), '--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(dump / f'rank{r}.pth', weights_only=True)['distill'] for r in (0, 1)]
    assert int(ranks[0]['terms.0.head_steps']) == 2
    heads = [k for k in ranks[0] if '.graphs.' in k]
    assert heads and all(torch.equal(ranks[0][k], ranks[1][k]) for k in heads)
