"""Backends (sr_kd.backends): each one's output equals eager fp32 through the one forward path (whole
images of two sizes, plain tiles, adaptive batches), its cache rebuilds what is stale or corrupt, and a
missing optional dependency fails in one line (``--backend onnxruntime``) or is skipped (``auto``).

Tolerance: 1e-4 max abs on outputs in [0, 1] for the fp32 backends (onnxruntime's and inductor's
convolutions sum in another order than oneDNN's; measured differences are ~1e-6).
The AOTInductor test compiles one tiny package (a C++ build: ~30 s on a quiet 2-core machine).
"""
import json
import os
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import sr_kd  # noqa: F401
from sr_kd.archs import IMDN
from sr_kd.archs.loading import describe
from sr_kd.backends import Options, check, prepare
from sr_kd.backends.cache import ENTRY, Entry
from sr_kd.cli import main
from sr_kd.errors import SRKDError
from sr_kd.inference import upscale

TOL = 1e-4
SIZES = [(23, 31), (40, 36)]
HAS_CXX = bool(shutil.which('g++') or shutil.which('c++') or shutil.which('clang++'))


@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    return IMDN(num_feat=16, num_modules=2, upscale=2).eval()


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp('backend_cache'))


def _image(h, w, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _assert_matches_eager(runner, net, info):
    for h, w in SIZES:
        x = _image(h, w)
        want = upscale(net, x, info)
        got = upscale(runner.fn, x, info, precision=runner.autocast)
        assert got.shape == want.shape == (1, 3, 2 * h, 2 * w)
        assert (got - want).abs().max() < TOL, (runner.label, h, w)
        shapes = []

        def counted(t):
            shapes.append(tuple(t.shape[2:]))
            return runner.fn(t)
        want_tiles = upscale(net, x, info, tile=16, tile_pad=4)
        got_tiles = upscale(counted, x, info, tile=16, tile_pad=4, precision=runner.autocast)
        assert (got_tiles - want_tiles).abs().max() < TOL, (runner.label, 'tiles', h, w)
        assert len(shapes) >= 4 and all(s[0] < h and s[1] < w for s in shapes)  # really tiles


@pytest.mark.slow
def test_onnxruntime_matches_eager(net, cache):
    pytest.importorskip('onnxruntime')
    runner = prepare('onnxruntime', net, describe(net), 'fp32', Options(cache_root=cache))
    assert runner.backend == 'onnxruntime' and not runner.eager
    _assert_matches_eager(runner, net, describe(net))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason='AOTInductor needs a C++ compiler')
def test_aoti_matches_eager_and_is_reused(net, cache, capsys):
    info = describe(net)
    runner = prepare('aoti', net, info, 'fp32', Options(cache_root=cache))
    _assert_matches_eager(runner, net, info)
    x = _image(12, 20).repeat(4, 1, 1, 1)  # adaptive cropping runs batches of four
    assert (runner.fn(x) - net(x)).abs().max() < TOL
    capsys.readouterr()
    again = prepare('aoti', net, info, 'fp32', Options(cache_root=cache))
    assert again.note == 'cached' and 'building' not in capsys.readouterr().err


def test_combinations_refused_in_one_line():
    with pytest.raises(SRKDError, match='needs --backend eager'):
        check('onnxruntime', 'fp32', exact_tiles=True)
    with pytest.raises(SRKDError, match='runs fp32/int8, not bf16'):
        check('onnxruntime', 'bf16')
    with pytest.raises(SRKDError, match='runs on the CPU here'):
        check('aoti', 'fp32', device='cuda')


def test_int8_refused_over_budget_unless_forced(net, cache, monkeypatch):
    # int8's cost depends on the machine's kernels (with AVX512-VNNI this random net loses ~0.001 dB, with
    # AVX2's saturating int16 sums far more), so the budget is set around the cost measured here
    pytest.importorskip('onnxruntime')
    from sr_kd.backends import onnx_backend
    info = describe(net)
    runner = prepare('onnxruntime', net, info, 'int8', Options(cache_root=cache, force_int8=True))
    cost = float(re.search(r'int8 costs (-?[\d.]+) dB', runner.note).group(1))
    x = _image(*SIZES[0])
    diff = (upscale(runner.fn, x, info) - upscale(net, x, info)).abs()
    assert 0 < diff.mean() < 0.02  # quantised: close, not equal
    monkeypatch.setattr(onnx_backend, 'INT8_MAX_COST_DB', cost - 0.01)
    with pytest.raises(SRKDError, match=r'int8 costs .* dB .*refused; --force-int8'):
        prepare('onnxruntime', net, info, 'int8', Options(cache_root=cache))
    monkeypatch.setattr(onnx_backend, 'INT8_MAX_COST_DB', cost + 0.01)
    assert 'int8 costs' in prepare('onnxruntime', net, info, 'int8', Options(cache_root=cache)).note


def test_cache_rebuilds_stale_and_corrupt(tmp_path, capsys):
    builds = []

    def make(tmp):
        builds.append(tmp)
        with open(tmp, 'wb') as f:
            f.write(b'artefact %d' % len(builds))

    entry = Entry({'model': 'abc', 'precision': 'fp32'}, {'torch': '1'}, '.bin', str(tmp_path))
    path, meta, built = entry.get(make, 'thing')
    assert built and open(path, 'rb').read() == b'artefact 1'
    assert entry.get(make, 'thing')[2] is False and len(builds) == 1  # valid: used as it is

    with open(path, 'r+b') as f:  # corrupt: same size, other bytes
        f.write(b'X')
    path, _, built = entry.get(make, 'thing')
    assert built and open(path, 'rb').read() == b'artefact 2'
    assert 'corrupt: rebuilding' in capsys.readouterr().err

    newer = Entry({'model': 'abc', 'precision': 'fp32'}, {'torch': '2'}, '.bin', str(tmp_path))  # torch upgraded
    path, _, built = newer.get(make, 'thing')
    assert built and 'stale' in capsys.readouterr().err and open(path, 'rb').read() == b'artefact 3'

    with open(os.path.join(newer.folder, ENTRY), 'w') as f:  # torn entry.json
        f.write('{"artefact": ')
    path, _, built = newer.get(make, 'thing')
    assert built and len(builds) == 4
    assert sorted(os.listdir(newer.folder)) == sorted([ENTRY, os.path.basename(path)])  # old artefacts removed


@pytest.mark.slow
def test_corrupt_onnx_entry_is_rebuilt_not_used(net, tmp_path):
    pytest.importorskip('onnxruntime')
    info = describe(net)
    prepare('onnxruntime', net, info, 'fp32', Options(cache_root=str(tmp_path)))
    (folder,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    meta = json.loads((folder / ENTRY).read_text())
    (folder / meta['artefact']).write_bytes(b'not onnx')
    runner = prepare('onnxruntime', net, info, 'fp32', Options(cache_root=str(tmp_path)))
    assert runner.note.startswith('built')
    x = _image(*SIZES[0])
    assert (upscale(runner.fn, x, info) - upscale(net, x, info)).abs().max() < TOL


@pytest.fixture
def folder(tmp_path, net):
    src = tmp_path / 'in'
    src.mkdir()
    for i, (h, w) in enumerate(SIZES):
        a = np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(a).save(src / f'{i}.png')
    ckpt = tmp_path / 'tiny_x2.pth'
    torch.save({'params': net.state_dict()}, ckpt)
    return src, str(ckpt)


def _outputs(out):
    return [np.asarray(Image.open(out / f'{i}.png'), dtype=np.int16) for i in range(len(SIZES))]


def test_cli_backends_agree(folder, tmp_path, monkeypatch, capsys):
    pytest.importorskip('onnxruntime')
    src, ckpt = folder
    monkeypatch.setenv('SR_KD_CACHE', str(tmp_path / 'cache'))
    outs = {}
    for backend in ('eager', 'onnxruntime'):
        out = tmp_path / backend
        assert main(['upscale', str(src), '-m', ckpt, '-o', str(out), '--tile', '32', '--tile-pad', '4',  # 40x36: tiles
                     '--backend', backend]) == 0
        outs[backend] = _outputs(out)
    for a, b in zip(outs['eager'], outs['onnxruntime']):
        assert np.abs(a - b).max() <= 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'x'), '--backend', 'onnxruntime', '--exact-tiles'])
    assert e.value.code == 2 and 'needs --backend eager' in capsys.readouterr().err


def test_eval_backend_same_numbers(folder, tmp_path, monkeypatch, capsys):
    pytest.importorskip('onnxruntime')
    src, ckpt = folder
    monkeypatch.setenv('SR_KD_CACHE', str(tmp_path / 'cache'))
    tables = {}
    for backend in ('eager', 'onnxruntime'):
        assert main(['eval', '--model', ckpt, '--hr', str(src), '--scale', '2', '--backend', backend]) == 0
        tables[backend] = [line for line in capsys.readouterr().out.splitlines() if line.startswith('mean')]
    assert tables['eager'] == tables['onnxruntime'] and tables['eager']


def test_missing_onnxruntime(folder, tmp_path, monkeypatch, capsys):
    src, ckpt = folder
    monkeypatch.setenv('SR_KD_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import onnxruntime -> ImportError
    with pytest.raises(SystemExit) as e:
        main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'out'), '--backend', 'onnxruntime'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith('sr-kd: error: --backend onnxruntime: onnxruntime is not installed')
    assert not list((tmp_path / 'out').glob('*.png'))  # refused before any image

    monkeypatch.setattr(shutil, 'which', lambda name: None)  # and no C++ compiler: auto has eager alone
    assert main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'auto'), '--backend', 'auto',
                 '--precision', 'fp32']) == 0  # fp32: onnxruntime is a candidate
    err = capsys.readouterr().err
    assert 'auto: skipping onnxruntime: onnxruntime is not installed' in err
    assert 'auto: eager fp32' in err
    assert len(_outputs(tmp_path / 'auto')) == 2


def test_auto_measures_once_and_remembers(net, tmp_path, monkeypatch, capsys):
    pytest.importorskip('onnxruntime')
    monkeypatch.setattr(shutil, 'which', lambda name: None)  # no AOTInductor: eager against onnxruntime
    info = describe(net)
    runner = prepare('auto', net, info, 'fp32', Options(cache_root=str(tmp_path)))
    x = _image(*SIZES[1])
    got = upscale(runner.fn, x, info)
    err = capsys.readouterr().err
    assert runner.backend in ('eager', 'onnxruntime') and 'fastest on a 40x36 input' in err
    assert (got - upscale(net, x, info)).abs().max() < TOL
    (decision,) = (tmp_path / 'auto').iterdir()
    assert json.loads(decision.read_text())['choice'] == runner.backend
    again = prepare('auto', net, info, 'fp32', Options(cache_root=str(tmp_path)))
    assert again.backend == runner.backend and 'measured on this machine' in again.note
    assert (upscale(again.fn, x, info) - got).abs().max() < TOL


def _cached_in_a_new_process(backend, net, cache, module):
    """(max abs difference to the module, the runner's note, whether ``module`` got imported) when a new
    process prepares ``backend`` from the cache and runs it once: what every CLI call pays."""
    import subprocess
    prepare(backend, net, describe(net), 'fp32', Options(cache_root=cache))  # the artefact is cached
    torch.save(net, os.path.join(cache, 'net.pt'))
    code = ('import sys, torch, sr_kd; from sr_kd.archs.loading import describe; '
            'from sr_kd.backends import Options, prepare; '
            f'net = torch.load({os.path.join(cache, "net.pt")!r}, weights_only=False); '
            f'r = prepare({backend!r}, net, describe(net), "fp32", Options(cache_root={cache!r})); '
            'x = torch.rand(1, 3, 8, 8); print(float((r.fn(x) - net(x)).abs().max()), r.note, '
            f'{module!r} in sys.modules)')
    diff, note, imported = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                                          check=True).stdout.split()[-3:]
    return float(diff), note, imported == 'True'


def test_cached_onnxruntime_does_not_import_the_exporter(net, cache):
    """A cached export runs without onnxscript: importing it (1.5 s) was paid by every CLI call."""
    pytest.importorskip("onnxruntime")
    diff, note, imported = _cached_in_a_new_process('onnxruntime', net, cache, 'onnxscript')
    assert note == 'cached' and not imported and diff < TOL


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason='AOTInductor needs a C++ compiler')
def test_cached_aoti_does_not_import_inductor(net, cache):
    """A cached AOTInductor package runs without torch._inductor: importing it and its Python-side loader
    cost 4-6 s in every CLI call."""
    diff, note, imported = _cached_in_a_new_process('aoti', net, cache, 'torch._inductor')
    assert note == 'cached' and not imported and diff < TOL


def test_auto_timing_picks_the_faster_through_noise(monkeypatch):
    """auto's timer: every backend warmed once, then at least MIN_ROUNDS interleaved rounds (more while
    they are quick), fastest round counts, so rounds slowed by noise do not decide."""
    import time as _time
    from sr_kd.backends import auto_backend as auto
    calls = {'a': 0, 'b': 0}
    plan = {'a': iter([0.03, 0.05, 0.05, 0.02] + [0.05] * 20), 'b': iter([0.04] * 30)}

    def backend(name):
        def run(x):
            calls[name] += 1
            _time.sleep(next(plan[name]))
        return run
    monkeypatch.setattr(auto, 'BUDGET_S', 0.1)
    seconds = auto._time({'a': backend('a'), 'b': backend('b')}, torch.zeros(1))
    assert calls['a'] == calls['b'] >= 1 + auto.MIN_ROUNDS
    assert min(seconds, key=seconds.get) == 'a'  # its third round (0.02) beats b's 0.04; two rounds would not
    assert seconds['a'] == pytest.approx(0.02, abs=0.01) and seconds['b'] == pytest.approx(0.04, abs=0.01)


@pytest.mark.parametrize('native', [False, True])
def test_precision_auto_follows_the_hardware(folder, tmp_path, monkeypatch, capsys, native):
    """upscale's default precision: bf16 where the CPU runs it in hardware, else fp32; a backend without bf16
    (onnxruntime) gets fp32; what was chosen is said."""
    import sr_kd.hardware
    src, ckpt = folder
    monkeypatch.setenv('SR_KD_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(sr_kd.hardware, 'cpu_has_bf16', lambda: native)
    outs = {}
    for name, extra in (('auto', []), ('fp32', ['--precision', 'fp32']), ('bf16', ['--precision', 'bf16'])):
        assert main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / name), *extra]) == 0
        outs[name] = _outputs(tmp_path / name)
    expected = 'bf16' if native else 'fp32'
    assert any((a != b).any() for a, b in zip(outs['fp32'], outs['bf16']))  # the two precisions are told apart
    assert all((a == b).all() for a, b in zip(outs['auto'], outs[expected]))
    assert main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'again'), '--overwrite']) == 0
    assert f'precision auto: {expected}' in capsys.readouterr().err
    if native and not sr_kd.backends.missing('onnxruntime'):
        assert main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'ort'), '--backend', 'onnxruntime']) == 0
        assert 'precision auto: fp32 (--backend onnxruntime runs no bf16' in capsys.readouterr().err
