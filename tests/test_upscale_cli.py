"""``sr-kd upscale`` on a folder of images as people have them, and the image reader/writer under it."""
import io
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

import sr_kd  # noqa: F401
from sr_kd.archs import IMDN
from sr_kd.cli import main
from sr_kd.errors import SRKDError
from sr_kd.image_io import _orient, read_image

H, W = 36, 44  # larger than the smallest tile (32), so the tiled path runs


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_x2.pth'
    torch.save({'params': IMDN(num_feat=16, num_modules=2, upscale=2).state_dict()}, path)
    return str(path)


def rng_image(shape, dtype=np.uint8, seed=0):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, shape, dtype=dtype, endpoint=True)


@pytest.fixture
def mixed(tmp_path):
    d = tmp_path / 'in'
    (d / 'sub').mkdir(parents=True)
    Image.fromarray(rng_image((H, W, 3))).save(d / 'rgb.png')
    Image.fromarray(rng_image((H, W, 4), seed=1)).save(d / 'rgba.png')
    Image.fromarray(rng_image((H, W), seed=2)).save(d / 'gray.png')
    Image.fromarray(rng_image((H, W, 3), seed=3)).quantize(16).save(d / 'palette.png')
    cv2.imwrite(str(d / 'rgb16.png'), rng_image((H, W, 3), np.uint16, seed=4))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees clockwise
    Image.fromarray(rng_image((H, W, 3), seed=5)).save(d / 'phone.jpg', exif=exif)
    (d / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
    (d / 'notes.txt').write_text('not an image')
    Image.fromarray(rng_image((H, W, 3), seed=6)).save(d / 'sub' / 'nested.png')
    return d


def test_mixed_folder(mixed, tmp_path, ckpt, capsys):
    out = tmp_path / 'out'
    status = main(['upscale', str(mixed), '-m', ckpt, '-o', str(out), '--tile', '32', '--tile-pad', '4'])
    printed = capsys.readouterr().out
    assert status == 1  # one corrupt file
    assert 'failed: cannot read image' in printed and 'corrupt.png' in printed
    assert 'upscaled 6 images (0 skipped, 1 failed)' in printed
    assert sorted(os.listdir(out)) == ['gray.png', 'palette.png', 'phone.png', 'rgb.png', 'rgb16.png', 'rgba.png']

    def load(name):
        return Image.open(out / name)
    assert load('rgb.png').mode == 'RGB' and load('rgb.png').size == (2 * W, 2 * H)
    assert load('gray.png').mode == 'L'
    assert load('palette.png').mode == 'RGB'
    assert load('phone.png').size == (2 * H, 2 * W)  # EXIF orientation applied
    rgba = load('rgba.png')
    assert rgba.mode == 'RGBA'
    alpha = torch.from_numpy(rng_image((H, W, 4), seed=1)[..., 3]).float()[None, None] / 255
    want = F.interpolate(alpha, scale_factor=2, mode='bicubic', align_corners=False).clamp(0, 1) * 255
    assert np.abs(np.asarray(rgba)[..., 3].astype(float) - want[0, 0].round().numpy()).max() <= 1
    sixteen = cv2.imread(str(out / 'rgb16.png'), cv2.IMREAD_UNCHANGED)
    assert sixteen.dtype == np.uint16 and sixteen.shape == (2 * H, 2 * W, 3)
    assert (sixteen % 257 != 0).any()  # real 16-bit values, not 8-bit ones scaled up

    # A re-run skips what exists; -r reaches the subfolder; --overwrite redoes everything.
    assert main(['upscale', str(mixed), '-r', '-m', ckpt, '-o', str(out)]) == 1
    printed = capsys.readouterr().out
    assert 'upscaled 1 image (6 skipped, 1 failed)' in printed
    assert (out / 'sub' / 'nested.png').exists()
    assert main(['upscale', str(mixed / '*.png'), '-m', ckpt, '-o', str(out), '--overwrite']) == 1
    assert 'upscaled 5 images (0 skipped, 1 failed)' in capsys.readouterr().out


def test_suffix_ext_and_gray16(tmp_path, ckpt, capsys):
    src = tmp_path / 'g16.png'
    Image.fromarray(rng_image((H, W), np.uint16)).save(src)
    rgba = tmp_path / 'a.png'
    Image.fromarray(rng_image((H, W, 4), seed=1)).save(rgba)
    out = tmp_path / 'out'
    assert main(['upscale', str(src), '-m', ckpt, '-o', str(out), '--suffix', '_x2',
                 '--tile', '32', '--exact-tiles']) == 0
    g = Image.open(out / 'g16_x2.png')
    assert g.mode.startswith('I;16') and g.size == (2 * W, 2 * H)
    assert main(['upscale', str(rgba), '-m', ckpt, '-o', str(out), '--ext', 'jpg', '--precision', 'bf16']) == 0
    assert Image.open(out / 'a.jpg').mode == 'RGB'  # JPEG has no alpha
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]


def test_imdn_as_any_size(tmp_path, capsys):
    from sr_kd.archs import IMDN_AS
    torch.manual_seed(0)
    ckpt = tmp_path / 'as.pth'
    torch.save({'params': IMDN_AS(num_feat=16, num_modules=2).state_dict()}, ckpt)
    Image.fromarray(rng_image((13, 17, 3))).save(tmp_path / 'odd.png')
    assert main(['upscale', str(tmp_path / 'odd.png'), '-m', str(ckpt), '-o', str(tmp_path / 'o'), '--scale', '3']) == 0
    assert Image.open(tmp_path / 'o' / 'odd.png').size == (51, 39)


def test_user_errors_exit_2(tmp_path, ckpt, capsys):
    a, b = tmp_path / 'a', tmp_path / 'b'
    for d in (a, b):
        d.mkdir()
        Image.fromarray(rng_image((H, W, 3))).save(d / 'same.png')
    for argv in (['upscale', str(a), str(b), '-m', ckpt, '-o', str(tmp_path / 'o')],  # two outputs clash
                 ['upscale', str(a / 'same.png'), '-m', ckpt, '-o', str(a)],  # output is the input
                 ['upscale', str(tmp_path / 'missing*.png'), '-m', ckpt, '-o', str(tmp_path / 'o')],
                 ['upscale', str(a), '-m', str(tmp_path / 'no.pth'), '-o', str(tmp_path / 'o')],
                 ['upscale', str(a), '-m', ckpt, '-o', str(tmp_path / 'o'), '--device', 'gpu'],
                 ['upscale', str(a), '-m', ckpt, '-o', str(tmp_path / 'o'), '--compile', '--exact-tiles']):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert capsys.readouterr().err.startswith('sr-kd: error: ')


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orientation_matches_pillow(tmp_path, orientation):
    """The numpy transforms used for 16-bit PNGs agree with ImageOps.exif_transpose (the 8-bit path)."""
    a = rng_image((5, 7, 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format='PNG', exif=exif)
    buf.seek(0)
    want = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    assert np.array_equal(_orient(a, orientation), want)
    path = tmp_path / 'o16.png'
    path.write_bytes(buf.getvalue())
    assert np.allclose(read_image(str(path)).rgb, want / 255.0)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which('g++') or shutil.which('c++')), reason='torch.compile on CPU needs a C++ compiler')
def test_compile_matches_eager(tmp_path, ckpt, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    for i in range(2):  # the second image runs the compiled graph again
        Image.fromarray(rng_image((H, W, 3), seed=i)).save(src / f'{i}.png')
    outs = {}
    for flag in ([], ['--compile']):
        out = tmp_path / ('compiled' if flag else 'eager')
        assert main(['upscale', str(src), '-m', ckpt, '-o', str(out), *flag]) == 0
        outs[bool(flag)] = [np.asarray(Image.open(out / f'{i}.png'), dtype=np.int16) for i in range(2)]
    for eager, compiled in zip(outs[False], outs[True]):
        assert eager.shape == (2 * H, 2 * W, 3) and np.abs(eager - compiled).max() <= 1


def test_outputs_inside_the_input_folder_are_not_inputs_on_a_rerun(tmp_path, ckpt, capsys):
    """`upscale -r photos -o photos/x2` used to upscale its own previous outputs on every rerun (issue 27)."""
    d = tmp_path / 'photos'
    (d / 'sub').mkdir(parents=True)
    Image.fromarray(rng_image((H, W, 3))).save(d / 'a.png')
    Image.fromarray(rng_image((H, W, 3), seed=1)).save(d / 'sub' / 'b.png')
    out = d / 'x2'
    for _ in range(2):
        assert main(['upscale', str(d), '-r', '-m', ckpt, '-o', str(out), '--overwrite']) == 0
    made = sorted(str(p.relative_to(out)) for p in out.rglob('*.png'))
    assert made == ['a.png', 'sub/b.png'], made


def test_a_suffix_with_a_path_separator_is_refused_before_any_work(tmp_path, ckpt, capsys):
    """`--suffix '/../../x'` wrote outside -o (issue 27)."""
    src = tmp_path / 'a.png'
    Image.fromarray(rng_image((H, W, 3))).save(src)
    with pytest.raises(SystemExit) as e:
        main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'out' / 'deep'), '--suffix', '/../../x'])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and 'cannot hold a path separator' in err, err
    assert not (tmp_path / 'x.png').exists() and not (tmp_path / 'out').exists()


def test_integer_weights_are_refused_not_run_to_a_black_image(tmp_path, ckpt, capsys):
    """A .safetensors whose tensors are int8 loaded as a float model and gave a black PNG with exit 0 (issue 27)."""
    from safetensors.torch import save_file
    sd = torch.load(ckpt, weights_only=True)['params']
    bad = tmp_path / 'int8.safetensors'
    save_file({k: v.to(torch.int8).contiguous() for k, v in sd.items()}, str(bad))
    src = tmp_path / 'a.png'
    Image.fromarray(rng_image((H, W, 3))).save(src)
    with pytest.raises(SystemExit) as e:
        main(['upscale', str(src), '-m', str(bad), '-o', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and 'torch.int8' in err and 'not as floats' in err, err
    assert not list((tmp_path / 'out').rglob('*.png'))


@pytest.mark.parametrize('broken, says', [(lambda v: torch.zeros_like(v), 'an all-black image'),
                                          (lambda v: v * 1e30, 'NaN or infinite values')])
def test_a_black_or_non_finite_output_fails_the_image(tmp_path, ckpt, capsys, broken, says):
    """Weights that load but compute nothing (all zero) or overflow wrote a black PNG with exit 0."""
    sd = torch.load(ckpt, weights_only=True)['params']
    bad = tmp_path / 'broken_x2.pth'
    torch.save({'params': {k: broken(v) for k, v in sd.items()}}, bad)
    src = tmp_path / 'in'
    src.mkdir()
    Image.fromarray(rng_image((H, W, 3))).save(src / 'a.png')
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(src / 'black.png')
    status = main(['upscale', str(src), '-m', str(bad), '-o', str(tmp_path / 'out'), '--precision', 'fp32'])
    printed = capsys.readouterr().out
    assert status != 0 and f'a.png: the model gave {says}' in printed, printed
    written = sorted(os.listdir(tmp_path / 'out')) if (tmp_path / 'out').exists() else []
    assert 'a.png' not in written
    if says == 'an all-black image':
        assert written == ['black.png']  # a black input may give a black output


def test_a_float_tiff_is_read_as_values_in_0_1_not_clipped_to_black(tmp_path, ckpt, capsys):
    """Pillow converts a mode-F image by clipping to integers: [0, 1] floats became an all-black PNG."""
    gray = rng_image((H, W), seed=7)
    Image.fromarray(gray.astype(np.float32) / 255).save(tmp_path / 'f.tif')
    pic = read_image(str(tmp_path / 'f.tif'))
    assert pic.gray and pic.bits == 16 and np.allclose(pic.rgb[..., 0], gray / 255, atol=1e-6)
    Image.fromarray(gray.astype(np.float32)).save(tmp_path / 'f255.tif')  # 0-255 floats
    assert np.allclose(read_image(str(tmp_path / 'f255.tif')).rgb, pic.rgb, atol=1e-6)
    assert main(['upscale', str(tmp_path / 'f.tif'), '-m', ckpt, '-o', str(tmp_path / 'out')]) == 0
    with Image.open(tmp_path / 'out' / 'f.png') as im:
        assert im.size == (2 * W, 2 * H) and np.asarray(im).max() > 0
    bad = np.full((H, W), np.nan, np.float32)
    Image.fromarray(bad).save(tmp_path / 'nan.tif')
    with pytest.raises(SRKDError, match='holding NaN or infinite values'):
        read_image(str(tmp_path / 'nan.tif'))


def test_eval_and_upscale_read_an_exif_turned_image_the_same_way(tmp_path):
    """A photo stored sideways with EXIF orientation 6 is shown turned: upscale turned it, eval read it raw,
    so a consistent pair failed the size check or scored a wrong PSNR."""
    from sr_kd.evaluate import load_pair
    from sr_kd.image_io import image_size, read_rgb_uint8
    raw = rng_image((2 * W, 2 * H, 3), seed=8)  # stored 88 high, 72 wide; shown 72 high, 88 wide
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / 'hr').mkdir()
    (tmp_path / 'lr').mkdir()
    Image.fromarray(raw).save(tmp_path / 'hr' / 'p.png', exif=exif)
    shown = np.rot90(raw, -1)
    Image.fromarray(np.ascontiguousarray(shown[::2, ::2])).save(tmp_path / 'lr' / 'p.png')
    assert image_size(str(tmp_path / 'hr' / 'p.png')) == (2 * W, 2 * H)  # (width, height) as shown
    assert np.array_equal(read_rgb_uint8(str(tmp_path / 'hr' / 'p.png')), shown)
    assert np.array_equal(read_image(str(tmp_path / 'hr' / 'p.png')).rgb, shown.astype(np.float32) / 255)
    lr, hr = load_pair(str(tmp_path / 'hr' / 'p.png'), 2, str(tmp_path / 'lr'))
    assert np.array_equal(hr, shown) and lr.shape == (H, W, 3)


def test_a_full_disk_stops_the_batch_at_the_first_failed_write(tmp_path, ckpt, capsys, monkeypatch):
    """ENOSPC failed each image after computing it; now the first one ends the batch in one line."""
    import errno

    from sr_kd import image_io, inference
    src = tmp_path / 'in'
    src.mkdir()
    for i in range(8):
        Image.fromarray(rng_image((H, W, 3), seed=i)).save(src / f'{i}.png')
    computed = []
    real_upscale = inference.upscale
    monkeypatch.setattr(inference, 'upscale', lambda *a, **k: computed.append(1) or real_upscale(*a, **k))

    def full(f, a, fmt):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(image_io, '_encode', full)
    with pytest.raises(SystemExit) as e:
        main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'out'), '--precision', 'fp32'])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and 'disk full writing' in err[0] and 'stopped after 0 images' in err[0]
    assert len(computed) < 8 and not list((tmp_path / 'out').iterdir())  # no temporary file left either


def test_a_closed_stdout_ends_the_batch_quietly(tmp_path, ckpt):
    """``sr-kd upscale ... | head -1`` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    from kd_util import REPO, cli_env
    src = tmp_path / 'in'
    src.mkdir()
    for i in range(3):
        Image.fromarray(rng_image((H, W, 3), seed=i)).save(src / f'{i}.png')
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    with os.fdopen(w, 'w') as out:
        proc = subprocess.run([sys.executable, '-m', 'sr_kd.cli', 'upscale', str(src), '-m', ckpt, '-o',
                               str(tmp_path / 'out')], cwd=REPO, env=cli_env(tmp_path), stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=180)
    assert proc.returncode == 141 and 'Error' not in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'out').exists() or len(os.listdir(tmp_path / 'out')) < 3  # it stopped


def test_nan_weights_are_refused_before_any_image(tmp_path, ckpt, capsys):
    """The guard of every checkpoint read (sr_kd/checkpoint.py), fast: the CLI test of it is in the slow tier."""
    sd = torch.load(ckpt, weights_only=True)
    next(iter(sd['params'].values()))[0] = float('nan')
    bad = tmp_path / 'nan_x2.pth'
    torch.save(sd, bad)
    Image.fromarray(rng_image((H, W, 3))).save(tmp_path / 'a.png')
    with pytest.raises(SystemExit) as e:
        main(['upscale', str(tmp_path / 'a.png'), '-m', str(bad), '-o', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and 'holds NaN/inf weights' in err and 'refusing it' in err, err
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')


def test_a_16_bit_tiff_stays_16_bit_and_a_jpeg_of_16_bits_is_said(tmp_path, ckpt, capsys):
    """Pillow reads a colour TIFF of 16 bits per channel as 8 bits: its upscale was an 8-bit PNG, and a
    16-bit PNG written as JPEG lost its low bits, neither said."""
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'scan.tif'), rng_image((H, W, 3), np.uint16, seed=7))
    out = tmp_path / 'out'
    assert main(['upscale', str(src), '-m', ckpt, '-o', str(out)]) == 0
    sixteen = cv2.imread(str(out / 'scan.png'), cv2.IMREAD_UNCHANGED)
    assert sixteen.dtype == np.uint16 and sixteen.shape == (2 * H, 2 * W, 3) and (sixteen % 257 != 0).any()
    cv2.imwrite(str(src / 'deep.png'), rng_image((H, W, 3), np.uint16, seed=8))
    capsys.readouterr()
    assert main(['upscale', str(src / 'deep.png'), '-m', ckpt, '-o', str(out), '--ext', 'jpg']) == 0
    assert f'note: {src / "deep.png"} has 16 bits per channel, which JPG cannot hold' in capsys.readouterr().err


def test_the_auto_precision_note_offers_only_what_the_backend_runs(tmp_path, ckpt, capsys):
    """With --backend onnxruntime it offered 'fp32 or bf16', and --precision bf16 was then refused."""
    pytest.importorskip('onnxruntime')
    src = tmp_path / 'a.png'
    Image.fromarray(rng_image((H, W, 3))).save(src)
    assert main(['upscale', str(src), '-m', ckpt, '-o', str(tmp_path / 'out'), '--backend', 'onnxruntime']) == 0
    assert '--precision fp32 or int8 to choose' in capsys.readouterr().err
