"""sr-kd fails before the work, in one line (exit 2): outputs that cannot be written, existing export
files, bad --scale/--threads/--tile/--device, an empty input folder. Each case names a checkpoint that
does not exist, so the error proves the check ran before the model was even loaded."""
import os
import subprocess
import sys

import pytest

from kd_util import REPO, cli_env, interrupt_at, make_teacher, write_images
from sr_kd.cli import main


def fails(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith('sr-kd: error: '), err
    for frag in fragments:
        assert frag in err, (frag, err)
    assert 'checkpoint not found' not in err  # checked before the model was loaded


@pytest.fixture
def images(tmp_path):
    return str(write_images(tmp_path / 'in', n=2, size=(24, 24)))


def test_upscale_output_and_numbers_checked_first(tmp_path, images, capsys):
    afile = tmp_path / 'afile'
    afile.write_text('x')
    missing = str(tmp_path / 'missing.pth')
    fails(capsys, ['upscale', images, '-m', missing, '-o', str(afile)], f'-o {afile}: exists and is not a folder')
    fails(capsys, ['upscale', images, '-m', missing, '-o', str(afile / 'sub')], 'cannot write there')
    out = str(tmp_path / 'out')
    fails(capsys, ['upscale', images, '-m', missing, '-o', out, '--scale', '-2'], '--scale must be >= 1, not -2')
    fails(capsys, ['upscale', images, '-m', missing, '-o', out, '--scale', '0'], '--scale must be >= 1, not 0')
    fails(capsys, ['upscale', images, '-m', missing, '-o', out, '--threads', '-1'], '--threads must be >= 1')
    fails(capsys, ['upscale', images, '-m', missing, '-o', out, '--tile', '1'], '--tile must be 0 (whole image) or >= 32')
    fails(capsys, ['upscale', images, '-m', missing, '-o', out, '--device', 'gpu'], '--device must be cpu or cuda')
    empty = tmp_path / 'empty'
    empty.mkdir()
    fails(capsys, ['upscale', str(empty), '-m', missing, '-o', out], f'no images found in {empty}')
    assert not os.path.exists(out)


@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='checks the machine without CUDA')
def test_device_cuda_on_a_cpu_machine(tmp_path, images, capsys):
    missing = str(tmp_path / 'missing.pth')
    fails(capsys, ['eval', '--model', missing, '--hr', images, '--scale', '2', '--device', 'cuda'],
          'torch sees no CUDA device')
    fails(capsys, ['report', str(tmp_path), '--device', 'cuda'], 'torch sees no CUDA device')


def test_eval_json_and_export_outputs_checked_first(tmp_path, images, capsys):
    afile = tmp_path / 'afile'
    afile.write_text('x')
    missing = str(tmp_path / 'missing.pth')
    fails(capsys, ['eval', '--model', missing, '--hr', images, '--scale', '2', '--json', str(afile / 'r.json')],
          'exists and is not a folder')
    fails(capsys, ['export', missing, '--onnx', str(afile)], f'--onnx {afile}: exists; use --overwrite')
    fails(capsys, ['export', missing, '--torchscript', str(tmp_path)], 'is a folder')
    assert afile.read_text() == 'x'


def test_every_option_has_help(capsys):
    from sr_kd.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__('argparse')._SubParsersAction))
    missing = [(name, a.option_strings) for name, p in sub.choices.items() for a in p._actions
               if a.option_strings and a.dest != 'help' and not a.help]
    assert not missing
    with pytest.raises(SystemExit):
        main(['eval', '--help'])
    out = ' '.join(capsys.readouterr().out.split())
    assert 'cpu or cuda (cuda:N) (default: cpu)' in out  # --device's default, added by the formatter


def test_version_and_help_without_torch():
    """The console script answers --version and --help without importing torch or basicsr."""
    code = ('import sys; sys.argv[0] = "/venv/bin/sr-kd"; from sr_kd.cli import main\n'
            'for argv in (["--version"], ["--help"]):\n'
            '    try:\n        main(argv)\n    except SystemExit:\n        pass\n'
            'assert "torch" not in sys.modules and "basicsr" not in sys.modules, sorted(sys.modules)\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=cli_env(REPO), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith('sr-kd 0.1.0\nusage: sr-kd')


def test_ctrl_c_in_upscale_exits_130_and_says_what_is_done(tmp_path):
    """SIGINT after the first image: exit 130, one line, the finished image is whole, a re-run skips it."""
    model = make_teacher(tmp_path / 'm.pth')
    images = write_images(tmp_path / 'in', n=3, size=(24, 24))
    out = tmp_path / 'out'
    code = ('import sys, time\nsys.argv[0] = "/venv/bin/sr-kd"\nimport sr_kd.commands.upscale_cmd as u\n'
            'real = u.Upscaler.__call__\ncalls = []\n'
            'def slow(self, path):\n    calls.append(path)\n    if len(calls) == 2:\n'
            '        open(sys.argv[-1], "w").close()\n        time.sleep(60)\n    return real(self, path)\n'
            'u.Upscaler.__call__ = slow\nfrom sr_kd.cli import main\n'
            'sys.exit(main(sys.argv[1:-1]))\n')
    marker = tmp_path / 'waiting'
    proc = subprocess.Popen([sys.executable, '-c', code, 'upscale', str(images), '-m', model, '-o', str(out),
                             str(marker)], cwd=REPO, env=cli_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err = interrupt_at(proc, marker)
    assert proc.returncode == 130, err[-2000:]
    said = [line for line in err.strip().splitlines() if not line.startswith('precision auto:')]  # a start note
    assert said == [
        f'sr-kd: interrupted; the images in {out} are complete (written whole or not at all): run the same '
        'command again to do the rest (it skips existing outputs)']
    assert sorted(os.listdir(out)) == ['img0.png']



def test_upscale_says_what_an_output_cannot_hold(tmp_path, capsys):
    """An animated GIF (first frame only), transparency written as JPEG (dropped) and a palette image
    (written as RGB) are each said in one note before the work, and the images are still upscaled."""
    import numpy as np
    from PIL import Image
    src = tmp_path / 'in'
    src.mkdir()
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(src / 'anim.gif', save_all=True, append_images=frames[1:])
    Image.fromarray(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8), 'RGBA').save(src / 'rgba.png')
    frames[0].convert('P', palette=Image.ADAPTIVE, colors=8).save(src / 'pal.png')
    out = tmp_path / 'out'
    assert main(['upscale', str(src), '-m', make_teacher(tmp_path / 'm.pth'), '-o', str(out), '--ext', 'jpg']) == 0
    err = capsys.readouterr().err
    assert f'note: {src / "anim.gif"} has 3 frames; only the first is upscaled' in err
    assert f'note: {src / "rgba.png"} has transparency, which JPEG cannot hold' in err
    assert f'note: {src / "pal.png"} is a palette image; {out / "pal.jpg"} is written as RGB' in err
    assert sorted(os.listdir(out)) == ['anim.jpg', 'pal.jpg', 'rgba.jpg']


def test_checkpoint_with_a_wrong_tensor_shape_is_one_line(tmp_path, images, capsys):
    import torch
    sd = torch.load(make_teacher(tmp_path / 'm.pth'), weights_only=True)
    first = next(iter(sd['params']))
    sd['params'][first] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / 'bad.pth')
    with pytest.raises(SystemExit) as e:
        main(['upscale', images, '-m', str(tmp_path / 'bad.pth'), '-o', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith('sr-kd: error: ') and len(err.splitlines()) == 1, err
    assert 'bad.pth' in err and 'Traceback' not in err


def test_adaptive_needs_an_imdn_as_checkpoint(tmp_path, images, capsys):
    with pytest.raises(SystemExit) as e:
        main(['upscale', images, '-m', make_teacher(tmp_path / 'm.pth'), '-o', str(tmp_path / 'out'), '--adaptive'])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("sr-kd: error: --adaptive is IMDN_AS's cropping"), err
    assert not os.path.exists(tmp_path / 'out') or not os.listdir(tmp_path / 'out')


def test_export_prints_no_tracebacks(tmp_path, capfd):
    """Libraries that probe for torchvision (importlib.util.find_spec) found a stand-in without __spec__
    and printed about 40 lines of tracebacks on every export."""
    import importlib.util
    importlib.util.find_spec('torchvision')  # raised ValueError('torchvision.__spec__ is None')
    out = tmp_path / 'm.onnx'
    assert main(['export', make_teacher(tmp_path / 'm.pth'), '--onnx', str(out), '--no-check']) == 0
    err = capfd.readouterr().err
    assert out.is_file() and 'Traceback' not in err and '__spec__' not in err, err[-3000:]
