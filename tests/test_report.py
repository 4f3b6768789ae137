"""`sr-kd report` on a tiny finished experiment made here: a PNG with losses, validation PSNR and crops."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kd_util import REPO, assert_one_line_error, cli_env, run_cli, tiny_options, write_options
from sr_kd.errors import SRKDError
from sr_kd.report import detail_box, make_report, read_jsonl


def sr_kd_cli(args, root):
    return subprocess.run([sys.executable, '-m', 'sr_kd.cli', *map(str, args)], cwd=REPO, env=cli_env(root),
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_report_of_a_finished_run(tmp_path):
    opt = tiny_options(tmp_path, total_iter=4)
    opt['val']['val_freq'] = 2
    assert run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'kd.yml', opt)], tmp_path).returncode == 0
    exp = tmp_path / 'experiments' / 'tiny'
    proc = sr_kd_cli(['report', exp, '-o', tmp_path / 'r.png'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(tmp_path / 'r.png')
    with Image.open(tmp_path / 'r.png') as im:
        assert im.format == 'PNG' and im.size[0] >= 800 and im.size[1] >= 500
    assert (tmp_path / 'r.png').stat().st_size < 500_000
    psnr = read_jsonl(exp / 'val_metrics.jsonl')
    assert [r['iter'] for r in psnr] == [2, 4] and set(psnr[-1]) >= {'bicubic', 'teacher', 'student'}
    # basicsr validates again after its loop, one iteration past the end: neither repeated nor mislabelled
    assert [json.loads(ln)['iter'] for ln in (exp / 'val_metrics.jsonl').read_text().splitlines()] == [2, 4]

    (exp / 'models' / 'net_g_latest.pth').unlink()  # falls back to the highest numbered checkpoint
    for name in ('net_g_4.pth', 'net_g_2.pth'):
        (exp / 'models' / name).unlink(missing_ok=True)
    assert make_report(str(exp), str(tmp_path / 'empty.png')).endswith('empty.png')  # no crops, still a page


@pytest.mark.slow
def test_a_torn_last_log_line_is_read_past_by_report_and_resume(tmp_path):
    """The logs are appended a row at a time: a kill can tear the last line. report and --auto_resume
    read past it; a bad line before the end is damage, named in one line."""
    opt = tiny_options(tmp_path, total_iter=4)
    opt['val']['val_freq'] = 2
    opt_path = write_options(tmp_path / 'kd.yml', opt)
    assert run_cli(['sr_kd/train.py', '-opt', opt_path], tmp_path).returncode == 0
    exp = tmp_path / 'experiments' / 'tiny'
    for log, torn in (('losses.jsonl', '{"iter": 5, "l_pi'), ('val_metrics.jsonl', '{"iter": 6, "data')):
        with open(exp / log, 'a') as f:
            f.write(torn)
    proc = sr_kd_cli(['report', exp, '-o', tmp_path / 'r.png'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli(['sr_kd/train.py', '-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=6'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(ln) for ln in (exp / 'losses.jsonl').read_text().splitlines()]
    assert [r['iter'] for r in rows] == list(range(1, 7))
    assert [r['iter'] for r in read_jsonl(exp / 'val_metrics.jsonl')] == [2, 4, 6]

    lines = (exp / 'losses.jsonl').read_text().splitlines()
    (exp / 'losses.jsonl').write_text('\n'.join([lines[0], '{"iter": 2, "l_pi', *lines[2:]]) + '\n')
    assert_one_line_error(sr_kd_cli(['report', exp, '-o', tmp_path / 'r.png'], tmp_path),
                          'losses.jsonl: line 2 is not JSON')


def test_report_errors_are_one_line(tmp_path):
    assert_one_line_error(sr_kd_cli(['report', tmp_path / 'nowhere'], tmp_path), 'experiment folder not found')
    (tmp_path / 'bare').mkdir()
    with pytest.raises(SRKDError, match='has no option file'):
        make_report(str(tmp_path / 'bare'))


def test_resumed_log_rows_keep_the_last(tmp_path):
    log = tmp_path / 'losses.jsonl'
    log.write_text(''.join(json.dumps(r) + '\n' for r in [{'iter': 1, 'l_pix': 3}, {'iter': 2, 'l_pix': 2},
                                                          {'iter': 2, 'l_pix': 1}]))
    assert [r['l_pix'] for r in read_jsonl(log)] == [3, 1]


def test_crop_goes_where_the_detail_is():
    img = np.full((64, 96, 3), 128, np.uint8)
    img[40:60, 60:90] = np.random.default_rng(0).integers(0, 256, (20, 30, 3))
    (top, left), size = detail_box(img, 24)
    assert size == 24 and 36 <= top <= 40 and 54 <= left <= 66
