"""``sr-kd distill``: a fast student of a slow model without ground truth (issue 26). The teacher is a
tiny random model of each spandrel family, the images are self-made, so nothing outside the repository
is needed."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import sr_kd  # noqa: F401
from kd_util import REPO, cli_env, write_images
from sr_kd.cli import main
from sr_kd.errors import SRKDError

spandrel = pytest.importorskip('spandrel')


def _family(name):
    """A tiny x4 model of a spandrel family, random weights (seed 0)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DAT import DAT
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.PLKSR import PLKSR
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR
    make = {
        'ESRGAN': lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4),
        'SwinIR': lambda: SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2,
                                 upscale=4, upsampler='pixelshuffledirect'),
        'HAT': lambda: HAT(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2,
                           upscale=4, upsampler='pixelshuffle', compress_ratio=3, squeeze_factor=4),
        'DAT': lambda: DAT(img_size=16, embed_dim=24, depth=[1], num_heads=[2], split_size=[2, 4],
                           expansion_factor=2, upscale=4, upsampler='pixelshuffledirect'),
        'OmniSR': lambda: OmniSR(num_feat=16, block_num=1, pe=True, window_size=4, res_num=1, up_scale=4),
        'SPAN': lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4),
        'Compact': lambda: Compact(num_feat=24, num_conv=4, upscale=4),
        'PLKSR': lambda: PLKSR(dim=16, n_blocks=2, upscaling_factor=4, kernel_size=7),
    }
    torch.manual_seed(0)
    return make[name]()


FAMILIES = ('ESRGAN', 'SwinIR', 'HAT', 'DAT', 'OmniSR', 'SPAN', 'Compact', 'PLKSR')


def _teacher_file(tmp_path, family='Compact'):
    path = tmp_path / f'{family}.pth'
    torch.save(_family(family).state_dict(), path)
    return str(path)


def _distill(args, tmp_path, timeout=300, **popen):
    cmd = [sys.executable, '-m', 'sr_kd.cli', 'distill', *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=timeout)


QUICK = ['--iters', '12', '--student', 'compact-16x4', '--recipe', 'output-offline', '--threads', '1']


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """One distillation run without ground truth, to the end: (tmp folder, OUT, teacher file)."""
    tmp = tmp_path_factory.mktemp('distill')
    teacher = _teacher_file(tmp)
    images = write_images(tmp / 'photos', n=6, size=(40, 36))  # >= the 32 px crop of output-offline
    out = tmp / 'out'
    proc = _distill([teacher, '--images', images, '-o', out, *QUICK, '--cache-dir', tmp / 'cache'], tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp, out, teacher, proc


def test_distill_writes_student_files_summary_and_report(finished):
    tmp, out, teacher, proc = finished
    for name in ('options.yml', 'student.safetensors', 'student.onnx', 'report.png', 'summary.json'):
        assert (out / name).is_file(), name
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['student'] == 'compact-16x4' and summary['parameters'] < summary['teacher_parameters']
    held = summary['metrics']['held_out']
    assert held['against'] == 'teacher' and 'teacher' not in held  # no row of the teacher against itself
    assert np.isfinite(held['student']['psnr']) and np.isfinite(held['bicubic']['psnr'])
    assert 'student to the teacher' in proc.stdout and 'faster than the teacher' in proc.stdout
    # the training time both ways: wall clock (what the user waited) and CPU time (what a busy machine hides)
    last = json.loads((out / 'experiments' / 'student' / 'val_metrics.jsonl').read_text().splitlines()[-1])
    assert last['train_cpu_seconds'] > 0 and summary['train_cpu_minutes'] == round(last['train_cpu_seconds'] / 60, 2)
    assert f'{summary["train_minutes"]:.1f} minutes of training steps ({summary["train_cpu_minutes"]:.1f} CPU ' \
        f'minutes)' in proc.stdout
    from sr_kd.report import make_report  # sr-kd report on the run: the teacher is the crops' reference
    assert make_report(str(out / 'experiments' / 'student'), out=str(tmp / 'r.png')) == str(tmp / 'r.png')


def test_validation_is_against_the_teacher_and_keeps_the_best(finished):
    """The logged validation PSNR of the best student equals the PSNR of net_g_best.pth to the teacher's
    output on the held-out images, computed here from the files; best.json names the best row."""
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    from sr_kd.archs.loading import load_model
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.distill.teacher import run_teacher, teacher_dtype
    tmp, out, teacher_file, _ = finished
    exp = out / 'experiments' / 'student'
    best = json.loads((exp / 'best.json').read_text())
    rows = [json.loads(ln) for ln in (exp / 'val_metrics.jsonl').read_text().splitlines()]
    assert best['value'] == max(r['student']['psnr'] for r in rows)
    row = next(r for r in rows if r['iter'] == best['iter'])
    plan = json.loads((out / 'distill.json').read_text())
    student, _ = load_model(str(exp / 'models' / 'net_g_best.pth'))
    teacher, _ = load_model(teacher_file)
    dtype = teacher_dtype({}, torch.device('cpu'))  # what the run's teacher ran at (distill.teacher_precision auto)
    psnrs = []
    for path in plan['held_out']:
        x = torch.from_numpy(read_rgb_uint8(path).copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            s, t = tensor2img([student(x)]), tensor2img([run_teacher(teacher, x, dtype).clamp(0, 1)])
        psnrs.append(calculate_psnr(s, t, crop_border=4, test_y_channel=False))
    assert row['student']['psnr'] == pytest.approx(float(np.mean(psnrs)), abs=1e-6)


def test_student_safetensors_loads_in_spandrel_and_gives_our_output(finished):
    from sr_kd.archs.loading import load_model
    from sr_kd.archs.spandrel_archs import spandrel_loads
    _, out, _, _ = finished
    theirs = spandrel_loads(str(out / 'student.safetensors')).model.eval()
    ours, _ = load_model(str(out / 'experiments' / 'student' / 'models' / 'net_g_best.pth'))
    x = torch.rand(1, 3, 17, 23, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(theirs(x), ours(x))


def test_offline_cache_without_ground_truth_equals_the_online_teacher(tmp_path):
    """PlainImageDataset + distill.teacher: offline: the stored target of each whole image is the teacher's
    output on that image itself (no downscaling), to float16 rounding; its key differs from the key of the
    same images read as HR (bicubic LR)."""
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.distill import teacher_cache
    from sr_kd.distill.teacher import cache_for_options
    images = write_images(tmp_path / 'photos', n=3, size=(30, 26))
    opt = {'scale': 4, 'network_g': {'upscale': 4}, 'network_t': {'type': 'auto'},
           'path': {'pretrain_network_t': _teacher_file(tmp_path), 'param_key_t': None},
           'distill': {'teacher': 'offline', 'teacher_precision': 'fp32', 'teacher_cache': str(tmp_path / 'c')},
           'datasets': {'train': {'name': 't', 'type': 'PlainImageDataset', 'dataroot_lq': str(images)}},
           'train': {'distill_opts': [{'type': 'OutputDistillLoss', 'name': 'out'}]}}
    cache = cache_for_options(opt, torch.device('cpu'), str(tmp_path))
    teacher = _family('Compact').eval()
    for path in sorted(images.iterdir()):
        img = read_rgb_uint8(str(path))
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            want = teacher(x)[0]
        got = torch.from_numpy(np.array(cache._arrays(str(path))[0], dtype=np.float32))
        assert got.shape == want.shape == (3, img.shape[0] * 4, img.shape[1] * 4)
        assert torch.allclose(got, want, atol=2e-3, rtol=1e-3)
    paths = [str(p) for p in sorted(images.iterdir())]
    plain = teacher_cache.cache_key(opt, paths, [], [], None, 'plain')
    assert plain == os.path.basename(cache.folder) and plain != teacher_cache.cache_key(opt, paths, [], [], None)


def test_auto_student_is_the_slowest_that_is_fast_enough():
    """The choice by speed with a fake timer: seconds per network by its parameter count."""
    from sr_kd.archs.loading import load_state_dict_model
    from sr_kd.distill import students
    teacher, info = load_state_dict_model(_family('Compact').state_dict())
    fake = {'teacher': 1.0, 'compact-16x4': 0.1, 'compact-32x8': 0.24, 'span-16': 0.26, 'imdn-32x4': 0.5}

    def timer(model, info, x, precision):
        name = 'teacher' if model is teacher else current[0]
        return lambda: fake[name]

    rows, current = [], [None]
    t_sec = timer(teacher, info, None, None)()
    rows.append(students.Timed('teacher', 1, t_sec, 1.0))
    for name in ('compact-16x4', 'compact-32x8', 'span-16', 'imdn-32x4'):
        current[0] = name
        rows += students.time_candidates(teacher, info, 4, torch.rand(1, 3, 8, 8), 'fp32', [name], timer)[1:]
    assert [round(r.speedup, 2) for r in rows] == [1.0, 10.0, 4.17, 3.85, 2.0]
    assert students.choose(rows, 4).name == 'compact-32x8'   # slowest of those >= 4x
    assert students.choose(rows, 2).name == 'imdn-32x4'
    assert students.choose(rows, 8).name == 'compact-16x4'
    with pytest.raises(SRKDError, match=r'no student preset is 20x faster .* compact-16x4, 10.0x'):
        students.choose(rows, 20)


def test_a_load_that_comes_while_timing_tilts_no_ratio():
    """Interleaved rounds: a load that doubles every forward from the second round on falls on the teacher
    and each preset alike, so each keeps its quiet-machine ratio (the fastest round counts; timed one after
    the other, a preset timed under the load would read half as fast), and the busy machine is said in one
    line."""
    from sr_kd.archs.loading import load_state_dict_model
    from sr_kd.distill import students
    teacher, info = load_state_dict_model(_family('Compact').state_dict())
    quiet = {'teacher': 1.0, 'compact-16x4': 0.25, 'span-16': 0.5}
    order = []

    def timer(model, info, x, precision):
        name = 'teacher' if model is teacher else ('compact-16x4', 'span-16')[len(order) - 1]
        order.append(name)

        def once():
            calls.append(name)
            return quiet[name] * (2 if len(calls) > 2 * len(quiet) else 1)  # warm-ups, round 1, then the load
        return once

    calls = []
    rows = students.time_candidates(teacher, info, 4, torch.rand(1, 3, 8, 8), 'fp32', ['compact-16x4', 'span-16'],
                                    timer)
    assert calls == ['teacher', 'compact-16x4', 'span-16'] * (1 + students.ROUNDS)  # a warm-up, then the rounds
    assert [(r.name, r.seconds, r.speedup) for r in rows] == [('teacher', 1.0, 1.0), ('compact-16x4', 0.25, 4.0),
                                                              ('span-16', 0.5, 2.0)]
    assert rows[0].drift == 1.0 and 'moved by 100%' in students.busy_note(rows)
    rows[0].drift = 0.1  # a quiet machine: nothing said
    assert students.busy_note(rows) is None


def test_slow_whole_image_validation_is_said_before_the_run():
    """Six 1080p frames: each of the ten validations took 45-190 s, 8 of 20 iterations in 7 minutes, and
    nothing had said so. The note reckons a floor from the timing the command already makes."""
    from sr_kd.distill.job import validation_note
    # a 1080p frame: the teacher 30 s (once), the student 3 s (ten times): 3 x (30 + 30) s = 3 minutes
    frames = validation_note(3, 30.0, 3.0, 600.0, '/photos/frame_0001.png')
    assert frames.startswith('note: validating the 3 held-out images whole will take at least 3 minutes') \
        and 'frame_0001.png' in frames
    assert validation_note(3, 0.3, 0.03, 1800.0, 'a.png') is None  # photographs of a few hundred px
    assert validation_note(3, 30.0, 3.0, 7200.0, 'a.png') is None  # 3 minutes beside 2 hours of training
    assert validation_note(3, 30.0, 3.0, None, 'a.png') is not None  # --iters: no training time to set it beside


def test_a_student_below_bicubic_is_said_with_the_table(finished):
    """A short run ended 32.76 dB to the teacher against bicubic's 34.91 without a word."""
    from sr_kd.distill.job import table
    _, out, _, _ = finished
    summary = json.loads((out / 'summary.json').read_text())
    m = summary['metrics']['held_out']
    for student, said in [(m['bicubic']['psnr'] - 0.5, True), (m['bicubic']['psnr'] + 0.5, False)]:
        m['student']['psnr'] = student
        assert ('note: the student is below bicubic' in table(summary)) == said


def _refused(capsys, argv, *fragments):
    """One line on stderr, and nothing before it on stdout ('recipe auto: ...' came first)."""
    with pytest.raises(SystemExit) as e:
        main(['distill', *map(str, argv)])
    out, err = (text.strip() for text in capsys.readouterr())
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith('sr-kd: error: '), err
    assert not out, out
    for frag in fragments:
        assert frag in err, (frag, err)


def test_every_bad_input_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    teacher = _teacher_file(tmp_path)
    span = _teacher_file(tmp_path, 'SPAN')
    images = write_images(tmp_path / 'photos', n=6, size=(52, 50))
    few = write_images(tmp_path / 'few', n=3, size=(52, 50))
    small = write_images(tmp_path / 'small', n=6, size=(28, 24))
    twins = write_images(tmp_path / 'twins', n=5, size=(52, 50))
    write_images(twins / 'sub', n=1, size=(52, 50))  # a second img0.png
    (tmp_path / 'not_a_model.pth').write_bytes(b'hello')
    (tmp_path / 'busy').mkdir()
    (tmp_path / 'busy' / 'x.txt').write_text('mine')
    (tmp_path / 'a_file').write_text('mine')
    out = tmp_path / 'out'
    cases = [
        ([tmp_path / 'missing.pth', '--images', images, '-o', out], 'teacher not found'),
        ([tmp_path / 'not_a_model.pth', '--images', images, '-o', out], 'not_a_model.pth'),
        ([teacher, '-o', out], 'give your images with --images DIR'),
        ([teacher, '--images', images, '--hr', images, '-o', out], 'one of them'),
        ([teacher, '--images', tmp_path / 'nope', '-o', out], 'folder not found'),
        ([teacher, '--images', few, '-o', out], 'too few'),
        ([teacher, '--images', small, '-o', out], 'at least 32 px'),
        ([teacher, '--images', twins, '-o', out], 'two images are named img0'),
        ([teacher, '--images', images, '-o', out, '--minutes', '0'], '--minutes must be a number > 0'),
        ([teacher, '--images', images, '-o', out, '--minutes', 'inf'], '--minutes must be a number > 0'),
        ([teacher, '--images', images, '-o', out, '--iters', '3'], '--iters must be at least 10'),
        ([teacher, '--images', images, '-o', out, '--speedup', '0.5'], '--speedup must be >= 1'),
        ([teacher, '--images', images, '-o', out, '--student', 'huge'], '--student must be auto or one of'),
        ([teacher, '--images', images, '-o', out, '--device', 'gpu7'], '--device must be cpu or cuda'),
        ([teacher, '--images', images, '-o', tmp_path / 'busy'], 'already exists and is not empty'),
        ([teacher, '--images', images, '-o', tmp_path / 'a_file'], 'is a file'),
        ([teacher, '--images', images, '-o', images / 'out'], 'inside --images'),
        ([teacher, '-o', tmp_path / 'nothing', '--resume'], 'holds no distillation run'),
        (['--images', images, '-o', out], 'name the teacher: sr-kd distill TEACHER.pth'),
        ([span, '--images', images, '-o', out, '--recipe', 'init-offline'], 'not a Compact network'),
        # folders that cannot be written: said before the timing, not as a traceback after it
        ([teacher, '--images', images, '-o', tmp_path / 'a_file' / 'out'], 'a_file: exists and is not a folder'),
        ([teacher, '--images', images, '-o', '/proc/sr_kd_out'], 'cannot write there (it takes no new files)'),
        ([teacher, '--images', images, '-o', out, '--cache-dir', tmp_path / 'a_file'], '--cache-dir'),
        ([teacher, '--images', images, '-o', out, '--cache-dir', '/proc/sr_kd_cache'], '--cache-dir'),
    ]
    if not torch.cuda.is_available():
        cases.append(([teacher, '--images', images, '-o', out, '--device', 'cuda'], 'no such CUDA device'))
    for argv, fragment in cases:
        _refused(capsys, argv, fragment)
        assert not out.exists() and not (images / 'out').exists(), argv
    assert os.listdir(tmp_path / 'busy') == ['x.txt'] and (tmp_path / 'a_file').read_text() == 'mine'
    assert not [p for p in os.listdir(tmp_path) if '.partial-' in p]


@pytest.mark.slow
def test_resume_after_a_kill_equals_an_unbroken_run(finished):
    """Kill the whole distill process group once a checkpoint exists; --resume ends with the same student,
    the same best checkpoint and the same validation rows as the unbroken run of the fixture."""
    tmp, unbroken, teacher, _ = finished
    out = tmp / 'killed'
    cmd = [sys.executable, '-m', 'sr_kd.cli', 'distill', teacher, '--images', str(tmp / 'photos'), '-o', str(out),
           *QUICK, '--cache-dir', str(tmp / 'cache'), '--no-onnx']
    proc = subprocess.Popen(cmd, cwd=REPO, env=cli_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    states = out / 'experiments' / 'student' / 'training_states'
    deadline = time.time() + 240
    while not (states.is_dir() and any(states.glob('*.state'))):
        assert proc.poll() is None and time.time() < deadline, 'no checkpoint before the run ended'
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _distill([teacher, '-o', out, '--resume', '--no-onnx'], tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    from sr_kd.checkpoint import load_checkpoint
    for name in ('net_g_latest.pth', 'net_g_best.pth'):
        a = load_checkpoint(str(unbroken / 'experiments' / 'student' / 'models' / name))['params']
        b = load_checkpoint(str(out / 'experiments' / 'student' / 'models' / name))['params']
        assert all(torch.equal(a[k], b[k]) for k in a), name
    rows = [(out if i else unbroken) / 'experiments' / 'student' / 'val_metrics.jsonl' for i in range(2)]
    a, b = ([{k: v for k, v in json.loads(ln).items() if not k.startswith('train_')} for ln in r.read_text().splitlines()]
            for r in rows)
    assert a == b


@pytest.mark.slow
@pytest.mark.parametrize('family', FAMILIES)
def test_every_spandrel_family_teaches_through_distill(tmp_path, family):
    teacher = _teacher_file(tmp_path, family)
    images = write_images(tmp_path / 'photos', n=5, size=(40, 36))
    proc = _distill([teacher, '--images', images, '-o', tmp_path / 'out', '--iters', '10', '--student', 'compact-16x4',
                     '--recipe', 'output-online', '--threads', '1', '--no-onnx'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert np.isfinite(summary['metrics']['held_out']['student']['psnr'])


def test_student_cut_from_a_compact_teacher():
    """Channel and layer selection: a student as wide and deep as the teacher is the teacher itself; a
    narrower, shallower one takes the same kept channels in every layer and the teacher's last conv outputs;
    other families are refused in one line."""
    from basicsr.archs import build_network

    from sr_kd.distill.init_from_teacher import compact_from_compact
    teacher = _family('Compact').eval()
    same = build_network({'type': 'Compact', 'num_feat': 24, 'num_conv': 4, 'upscale': 4}).eval()
    same.load_state_dict(compact_from_compact(teacher.state_dict(), same.state_dict()))
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(same(x), teacher(x))
    small = build_network({'type': 'Compact', 'num_feat': 8, 'num_conv': 2, 'upscale': 4})
    cut = compact_from_compact(teacher.state_dict(), small.state_dict())
    t = teacher.state_dict()
    keep = [c for c in range(24) if any(torch.equal(t['body.0.weight'][c], w) for w in cut['body.0.weight'])]
    assert len(keep) == 8 and torch.equal(cut['body.1.weight'], t['body.1.weight'][keep])
    assert torch.equal(cut['body.6.weight'], t['body.10.weight'][:, keep])  # last conv: all outputs, kept inputs
    with pytest.raises(SRKDError, match='not a Compact network'):
        compact_from_compact(_family('SPAN').state_dict(), small.state_dict())


def _processes_naming(path) -> list:
    """The pids of the processes whose command line names ``path`` (Linux /proc)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if str(path).encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.mark.slow
@pytest.mark.parametrize('to', ['terminal', 'process'])
def test_ctrl_c_keeps_the_best_student_and_says_how_to_continue(finished, to):
    """A terminal's Ctrl-C signals the whole foreground group; `kill -INT`, a GUI's stop button or
    subprocess.send_signal reach sr-kd alone: training went on to its end with that, and a second one left the
    training child running behind an exited sr-kd."""
    tmp, _, teacher, _ = finished
    out = tmp / f'interrupted_{to}'
    cmd = [sys.executable, '-m', 'sr_kd.cli', 'distill', teacher, '--images', str(tmp / 'photos'), '-o', str(out),
           *QUICK, '--iters', '400', '--cache-dir', str(tmp / 'cache'), '--no-onnx']
    proc = subprocess.Popen(cmd, cwd=REPO, env=cli_env(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    best = out / 'experiments' / 'student' / 'models' / 'net_g_best.pth'
    deadline = time.time() + 240
    while not best.is_file():
        assert proc.poll() is None and time.time() < deadline, 'no best checkpoint before the run ended'
        time.sleep(0.05)
    (os.killpg if to == 'terminal' else os.kill)(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=120)[1].strip().splitlines()
    assert proc.returncode == 130, err[-5:]
    assert err[-1].startswith('sr-kd: interrupted') and f'-o {out} --resume' in err[-1], err[-1]
    assert best.is_file() and 'Traceback' not in '\n'.join(err)
    assert not _processes_naming(out), 'a training process still runs'
    iters = [json.loads(ln)['iter'] for ln in (out / 'experiments' / 'student' / 'val_metrics.jsonl').open()]
    assert max(iters) < 400, 'the run was not stopped: it trained to its end'


def test_ctrl_c_before_the_first_checkpoint_says_no_student_is_kept(tmp_path, capsys, monkeypatch):
    """Interrupted while the cache was built or before the first validation, it said 'the best student so
    far stays in .../models', a folder without a student."""
    from sr_kd.commands import distill_cmd

    def interrupted_training(args, resume):
        raise KeyboardInterrupt

    monkeypatch.setattr(distill_cmd, '_plan', lambda args: {})
    monkeypatch.setattr(distill_cmd, '_train', interrupted_training)
    images = write_images(tmp_path / 'photos', n=6, size=(52, 50))
    assert main(['distill', _teacher_file(tmp_path), '--images', str(images), '-o', str(tmp_path / 'out')]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith('sr-kd: interrupted; nothing trained yet; continue with: sr-kd distill') and \
        'best student' not in err, err


@pytest.mark.parametrize('key, near', [('techer', 'teacher'), ('fades', 'fade'), ('teacher_precison', 'teacher_precision')])
def test_a_misspelt_distill_key_is_refused_with_the_nearest_one(tmp_path, key, near):
    """distill: {techer: offline} used to run the teacher online without a word (issue 27)."""
    from kd_util import tiny_options

    from sr_kd.options import check_options
    opt = tiny_options(tmp_path)
    opt['distill'][key] = 'offline'
    with pytest.raises(SRKDError, match=f'distill.{key} is not an option \\(did you mean: {near}[,?]'):
        check_options(opt)


def test_resume_refuses_a_teacher_images_or_budget_it_was_not_started_with(finished, capsys):
    """They were ignored without a word: the run went on with its own teacher and budget."""
    tmp, out, teacher, _ = finished
    (tmp / 'other').mkdir(exist_ok=True)
    other = _teacher_file(tmp / 'other')
    for argv, fragment in [([other, '-o', out, '--resume'], 'with the teacher'),
                           ([teacher, '-o', out, '--resume', '--iters', '50'], 'with --iters 12, not 50'),
                           ([teacher, '-o', out, '--resume', '--images', tmp], 'with --images/--hr'),
                           ([teacher, '-o', out, '--resume', '--student', 'compact-24x6'], 'with --student')]:
        _refused(capsys, argv, fragment)


def test_report_of_a_distill_output_reports_its_training_and_keeps_its_picture(finished, tmp_path):
    """`sr-kd report OUT` replaced OUT/report.png (teacher | student crops) with an empty page."""
    _, out, _, _ = finished
    picture = (out / 'report.png').read_bytes()
    proc = subprocess.run([sys.executable, '-m', 'sr_kd.cli', 'report', str(out)], cwd=REPO, env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out / 'experiments' / 'student' / 'report.png')
    assert (out / 'report.png').read_bytes() == picture and 'sr-kd distill output' in proc.stderr
    (out / 'experiments' / 'student' / 'report.png').unlink()


@pytest.mark.parametrize('named', [True, False])
def test_resume_of_a_finished_run_trains_nothing_more(finished, named):
    """--resume takes the run's own teacher when it is left out (the refusal of another teacher says to leave
    it out; the teacher was a required argument then)."""
    tmp, out, teacher, _ = finished
    log = out / 'experiments' / 'student' / 'val_metrics.jsonl'
    before = log.read_text()
    proc = _distill([teacher] * named + ['-o', out, '--resume', '--no-onnx'], tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'finished already' in proc.stdout and log.read_text() == before


def test_a_validation_set_without_ground_truth_needs_the_teacher(tmp_path):
    """PlainImageDataset (or against: teacher) as val is measured against the teacher: a run without one is
    refused before any work instead of failing in the first validation."""
    from kd_util import tiny_options

    from sr_kd.options import check_options
    opt = tiny_options(tmp_path)
    opt['datasets']['val'] = {'name': 'mine', 'type': 'PlainImageDataset',
                              'dataroot_lq': opt['datasets']['val']['dataroot_gt']}
    check_options(opt)  # SRKDModel with a teacher: fine
    opt['model_type'] = 'SRModel'
    for key in ('network_t', 'distill'):
        del opt[key]
    opt['train'].pop('distill_opts')
    opt['path'] = {k: v for k, v in opt['path'].items() if not k.endswith('_t')}
    with pytest.raises(SRKDError, match='datasets.val has no ground truth'):
        check_options(opt)


def test_cache_teacher_refuses_auto_pairs_in_one_line(tmp_path):
    from sr_kd.distill.teacher import cache_for_options
    opt = {'scale': 4, 'network_g': {'upscale': 4}, 'network_t': {'type': 'auto'},
           'path': {'pretrain_network_t': _teacher_file(tmp_path)}, 'distill': {'teacher': 'offline', 'pairs': 'auto'},
           'datasets': {'train': {'type': 'PlainImageDataset', 'dataroot_lq': str(tmp_path)}}, 'train': {}}
    with pytest.raises(SRKDError, match='pairs: auto is resolved when training starts'):
        cache_for_options(opt, torch.device('cpu'), str(tmp_path))


def test_recipe_auto_cuts_the_student_from_a_compact_teacher_only():
    from sr_kd.distill.recipes import resolve
    compact, span = _family('Compact').state_dict(), _family('SPAN').state_dict()
    assert resolve('auto', compact, 'auto') == 'init-offline-noaug'
    assert resolve('auto', compact, 'compact-16x4') == 'init-offline-noaug'
    assert resolve('auto', compact, 'span-16') == 'output-offline-noaug'
    assert resolve('auto', span, 'auto') == 'output-offline-noaug'
    assert resolve('output-online', compact, 'auto') == 'output-online'


def test_help_names_what_recipe_auto_resolves_to(capsys):
    from sr_kd.cli import main
    from sr_kd.distill.recipes import resolve
    with pytest.raises(SystemExit):
        main(['distill', '--help'])
    help_text = ' '.join(capsys.readouterr().out.split())
    compact, span = _family('Compact').state_dict(), _family('SPAN').state_dict()
    assert f"auto: {resolve('auto', compact, 'auto')} for a Compact teacher and student, else " \
        f"{resolve('auto', span, 'auto')})" in help_text


@pytest.mark.parametrize('name', sorted(__import__('sr_kd.distill.recipes', fromlist=['RECIPES']).RECIPES))
def test_every_recipe_writes_an_option_file_the_schema_accepts_and_whose_terms_build(name):
    from sr_kd import schema
    from sr_kd.distill import job, recipes, students
    from sr_kd.distill.head import build_terms
    sections = recipes.sections(name, 1000, '/tmp/cache', 4)
    opt = job.option_file(teacher_path='/t.pth', scale=4, student_opt=students.network_opt('compact-16x4', 4),
                          images='/images', train_names=['a', 'b'], val_names=['c'], recipe_sections=sections,
                          lq_size=recipes.recipe(name)[1], total_iter=1000, seed=0, hr=False, device='cpu')
    schema.validate(opt)
    names, terms = build_terms(opt['train']['distill_opts'])
    if recipes.recipe(name)[3].get('border'):  # LR pixels, times the scale for the output term
        assert terms[names.index('out')].crop_border == 16
