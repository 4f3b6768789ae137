"""Issue 12: models from the upscaling ecosystem in (spandrel-loaded teachers, ``type: auto``, ``pairs: auto``),
students the ecosystem can run out (SPAN/Compact/PLKSR saved so spandrel loads them), every command on both,
one-line errors for wrong files, and distillation on plain images with no ground truth.

spandrel archs are built with random weights and saved here; nothing is downloaded."""
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import sr_kd  # noqa: F401
from basicsr.archs import build_network

from kd_util import REPO, assert_one_line_error, run_cli, tiny_options, write_images, write_options
from sr_kd.archs.loading import describe, load_model, load_teacher
from sr_kd.cli import main
from sr_kd.errors import SRKDError

spandrel = pytest.importorskip('spandrel')


def student(opt, seed=0):
    torch.manual_seed(seed)
    return build_network(dict(opt))


def save_basicsr(net, path):
    """As BasicSR's save_network writes a student: {'params': state_dict}."""
    torch.save({'params': net.state_dict()}, path)
    return str(path)


@pytest.mark.parametrize('opt,arch', [
    ({'type': 'SPAN', 'feature_channels': 16, 'upscale': 2}, 'SPAN'),
    ({'type': 'Compact', 'num_feat': 16, 'num_conv': 3, 'upscale': 3}, 'Compact'),
    ({'type': 'PLKSR', 'dim': 16, 'n_blocks': 2, 'kernel_size': 7, 'upscale': 2}, 'PLKSR'),
])
def test_students_load_in_spandrel_and_give_our_output(tmp_path, opt, arch):
    """A trained student (training mode, as the training loop leaves it) saved as .pth and as .safetensors:
    spandrel's own loader finds the arch and scale and its model gives our eval output."""
    from sr_kd.archs.spandrel_archs import spandrel_loads
    net = student(opt).train()
    with torch.no_grad():  # one "step" so the weights are not the initial ones
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    pth = save_basicsr(net, tmp_path / 's.pth')
    assert main(['export', pth, '--safetensors', str(tmp_path / 's.safetensors')]) == 0
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net.eval()(x)
    for path in (pth, str(tmp_path / 's.safetensors')):
        desc = spandrel_loads(path)
        assert desc.architecture.id == arch and desc.scale == opt['upscale']
        with torch.no_grad():
            theirs = desc.model.eval()(x)
        assert theirs.shape == ours.shape and (theirs - ours).abs().max() < 1e-5
        model, info = load_model(path)
        assert info.network_opt['type'] == opt['type'] and info.scale == opt['upscale']
        rebuilt = build_network(dict(info.network_opt))  # the options read back rebuild the same network
        assert sorted(rebuilt.state_dict()) == sorted(net.state_dict())


def test_training_writes_safetensors_spandrel_loads(tmp_path):
    """logger.save_safetensors: each checkpoint of the student is also written as .safetensors, which
    spandrel loads as it is and which gives the .pth's output; the option is refused where nothing writes it."""
    from kd_util import build_in_process
    from sr_kd.archs.spandrel_archs import spandrel_loads
    from sr_kd.options import check_options
    opt = tiny_options(tmp_path)
    opt['network_g'] = {'type': 'SPAN', 'feature_channels': 8, 'upscale': 2}
    opt.pop('distill')
    opt['train']['distill_opts'] = [{'type': 'OutputDistillLoss', 'name': 'out', 'loss_weight': 0.5}]
    opt['logger']['save_safetensors'] = True
    model = build_in_process(write_options(tmp_path / 'o.yml', opt), tmp_path, steps=2)
    model.save(0, 2)
    models = tmp_path / 'experiments' / 'tiny' / 'models'
    x = torch.rand(1, 3, 11, 9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = load_model(str(models / 'net_g_2.pth'))[0].eval()(x)
        desc = spandrel_loads(str(models / 'net_g_2.safetensors'))
        assert desc.architecture.id == 'SPAN' and desc.scale == 2
        assert (desc.model.eval()(x) - ours).abs().max() < 1e-6
    opt['model_type'] = 'SRModel'
    with pytest.raises(SRKDError, match='save_safetensors is written by model_type: SRKDModel'):
        check_options(opt)


def test_teacher_auto_loads_any_arch_and_checks_scale(tmp_path):
    t = student({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2,
                 'num_grow_ch': 32, 'scale': 2})
    path = save_basicsr(t, tmp_path / 'esrgan.pth')
    opt = {'scale': 2, 'network_g': {'type': 'SPAN', 'upscale': 2}, 'network_t': {'type': 'auto'},
           'path': {'pretrain_network_t': path}}
    net, info = load_teacher(opt)
    assert info.arch == 'ESRGAN' and info.scale == 2 and info.source == 'spandrel'
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(net(x), t.eval()(x), atol=1e-6)
    with pytest.raises(SRKDError, match=r'is a x2 model \(ESRGAN .*found by spandrel\), but the student is x4'):
        load_teacher({**opt, 'scale': 4, 'network_g': {'type': 'SPAN', 'upscale': 4}})
    with pytest.raises(SRKDError, match='remove num_feat'):
        load_teacher({**opt, 'network_t': {'type': 'auto', 'num_feat': 64}})


def test_auto_pairs_give_the_listed_imdn_pairs_and_span_blocks():
    from sr_kd.distill.auto_pairs import auto_pairs
    listed = yaml.safe_load((REPO / 'options' / 'imdn_kd.yml').read_text())['distill']['pairs']
    imdn_s = student({'type': 'IMDN', 'num_feat': 32, 'num_modules': 4})
    imdn_t = student({'type': 'IMDN', 'num_feat': 64, 'num_modules': 6})
    assert auto_pairs(imdn_s, imdn_t) == listed
    span = student({'type': 'SPAN', 'feature_channels': 16})
    assert auto_pairs(span, imdn_t) == [['block_2', 'IMDB2'], ['block_4', 'IMDB4'], ['block_6', 'IMDB6']]
    compact = student({'type': 'Compact', 'num_feat': 8, 'num_conv': 4})
    assert auto_pairs(compact, imdn_t, n=2) == [['body.3', 'IMDB2'], ['body.9', 'IMDB6']]  # the PReLUs, not the convs


def test_commands_on_a_span_student_and_a_spandrel_teacher(tmp_path, capsys):
    """inspect, upscale (tiles equal the whole image: no whole-image statistics), eval and --exact-tiles
    refused, on a SPAN student and on an ESRGAN model spandrel loads (x4: its body runs at input size)."""
    span = save_basicsr(student({'type': 'SPAN', 'feature_channels': 8, 'upscale': 2}), tmp_path / 'span.pth')
    rrdb = save_basicsr(student({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2,
                                 'num_grow_ch': 32, 'scale': 4}), tmp_path / 'rrdb.pth')
    write_images(tmp_path / 'hr', n=2, size=(36, 28))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 45, 3), dtype=np.uint8)).save(tmp_path / 'a.png')
    for ckpt, arch, scale in ((span, 'SPAN', 2), (rrdb, 'ESRGAN', 4)):
        assert main(['inspect', ckpt]) == 0
        out = capsys.readouterr().out
        assert f'architecture: {arch} (detected by spandrel)' in out and f'scale:        x{scale}' in out
        assert re.search(r'^\* ', out, flags=re.M)  # the body's blocks are marked
        outs = {}
        for name, tile in (('whole', ['--tile', '0']), ('tiled', ['--tile', '32', '--tile-pad', '32'])):
            assert main(['upscale', str(tmp_path / 'a.png'), '-m', ckpt, '-o', str(tmp_path / name / arch), *tile]) == 0
            outs[name] = np.asarray(Image.open(tmp_path / name / arch / 'a.png'), dtype=np.int16)
        assert outs['whole'].shape == (37 * scale, 45 * scale, 3) and np.abs(outs['whole'] - outs['tiled']).max() <= 1
        assert main(['eval', '--model', ckpt, '--hr', str(tmp_path / 'hr'), '--scale', str(scale)]) == 0
        assert re.search(r'^mean\s+\d+\.\d{4}', capsys.readouterr().out, flags=re.M)
        with pytest.raises(SystemExit) as e:
            main(['upscale', str(tmp_path / 'a.png'), '-m', ckpt, '-o', str(tmp_path / 'x'), '--exact-tiles'])
        assert e.value.code == 2 and 'equal the whole image already' in capsys.readouterr().err


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('opt', [{'type': 'SPAN', 'feature_channels': 8, 'upscale': 2},  # a student
                                 {'type': 'Compact', 'num_feat': 8, 'num_conv': 2, 'upscale': 2}])  # a teacher
@pytest.mark.slow
def test_onnx_export_of_a_span_student_and_a_compact_teacher(tmp_path, capsys, opt):
    ort = pytest.importorskip('onnxruntime')
    net = student(opt)
    ckpt = save_basicsr(net, tmp_path / 'span.pth')
    assert main(['export', ckpt, '--onnx', str(tmp_path / 'span.onnx')]) == 0
    assert 'onnxruntime matches PyTorch' in capsys.readouterr().out
    x = torch.rand(1, 3, 19, 26, generator=torch.Generator().manual_seed(2))
    got = ort.InferenceSession(str(tmp_path / 'span.onnx'), providers=['CPUExecutionProvider']).run(
        ['sr'], {'lr': x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - net.eval()(x).numpy()).max() < 1e-4


def test_wrong_files_fail_in_one_line(tmp_path, capsys):
    (tmp_path / 'notes.pth').write_text('not a model')
    torch.save({'epoch': 3, 'lr': 0.1}, tmp_path / 'state.pth')
    torch.save({'params': {'foo.weight': torch.zeros(2, 3)}}, tmp_path / 'foo.pth')
    (tmp_path / 'bad.safetensors').write_bytes(b'\x00' * 20)
    # torch.load said 'EOFError', '101' and '[enforce fail at inline_container.cc:180] . file in archive...'
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'hello.pth').write_text('hello\n')
    (tmp_path / 'lfs.pth').write_text('version https://git-lfs.github.com/spec/v1\noid sha256:ab12\nsize 2470\n')
    (tmp_path / 'lfs.safetensors').write_text((tmp_path / 'lfs.pth').read_text())  # safetensors: 'HeaderTooSmall'
    import zipfile
    with zipfile.ZipFile(tmp_path / 'archive.pth', 'w') as z:
        z.writestr('x.txt', 'not weights')
    cases = {'notes.pth': 'not a PyTorch weights file', 'state.pth': 'is not a model',
             'empty.pth': 'the file is empty (0 bytes)', 'hello.pth': 'not a PyTorch weights file',
             'lfs.pth': 'a Git LFS pointer', 'lfs.safetensors': 'a Git LFS pointer', 'archive.pth': 'not a PyTorch weights file',
             'foo.pth': "unknown architecture: 1 tensors (foo.weight (2, 3)",
             'bad.safetensors': 'not a safetensors file'}
    for name, expect in cases.items():
        with pytest.raises(SystemExit) as e:
            main(['inspect', str(tmp_path / name)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and expect in err and len(err.strip().splitlines()) == 1, err


def test_plain_images_distil_a_compact_teacher_end_to_end(tmp_path):
    """options/compact_kd_plain.yml as a user runs it, on a folder of images with no HR: a Real-ESRGAN
    Compact teacher (random weights) loaded by type: auto, pairs: auto, the teacher's output the only
    target; the chosen pairs are written into the experiment's copy of the options."""
    opt = yaml.safe_load((REPO / 'options' / 'compact_kd_plain.yml').read_text())
    teacher = student({'type': 'Compact', 'num_feat': 16, 'num_conv': 4, 'upscale': 4})
    opt['path']['pretrain_network_t'] = save_basicsr(teacher, tmp_path / 'realesr-compact.pth')
    opt['datasets']['train'].update(dataroot_lq=str(write_images(tmp_path / 'photos', n=3, size=(40, 36))),
                                    gt_size=64, batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt['network_g'].update(feature_channels=8)
    opt['train']['total_iter'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    opt_file = write_options(tmp_path / 'plain.yml', opt)
    proc = run_cli(['sr_kd/train.py', '-opt', opt_file], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / opt['name']
    log = next(exp.glob('train_*.log')).read_text()
    assert 'distill.pairs: auto chose' in log and 'l_out' in log and 'l_pix' not in log
    copy = (exp / 'plain.yml').read_text()
    assert re.search(r'pairs: \[\[block_\d, body\.\d+\], .*\]  # chosen by pairs: auto', copy), copy
    model, info = load_model(str(exp / 'models' / 'net_g_latest.pth'))
    assert info.arch == 'SPAN' and info.scale == 4
    from sr_kd.archs.spandrel_archs import spandrel_loads  # save_safetensors: true in the option file
    assert spandrel_loads(str(exp / 'models' / 'net_g_latest.safetensors')).architecture.id == 'SPAN'
    from sr_kd.report import make_report  # a run without HR still gets its report (losses; no crops)
    assert make_report(str(exp)).endswith('report.png')


def test_plain_dataset_refuses_pixel_loss_and_validates_whole_images(tmp_path):
    from sr_kd.options import check_options
    opt = tiny_options(tmp_path)
    opt['datasets']['train'].update(type='PlainImageDataset', dataroot_lq=opt['datasets']['train'].pop('dataroot_gt'))
    with pytest.raises(SRKDError, match='compare with ground truth'):
        check_options(opt)
    from sr_kd.data.plain_dataset import PlainImageDataset
    val = PlainImageDataset({'name': 'v', 'phase': 'val', 'scale': 2,
                             'dataroot_lq': opt['datasets']['train']['dataroot_lq']})
    whole = val[0]  # a whole image without HR: SRKDModel validates it against the teacher
    assert whole['lq'].shape == (3, 40, 40) and 'gt' not in whole and 'crop' not in whole
    ds = PlainImageDataset({'name': 't', 'phase': 'train', 'scale': 2, 'gt_size': 16,
                            'dataroot_lq': opt['datasets']['train']['dataroot_lq']})
    item = ds[0]
    assert item['lq'].shape == (3, 8, 8) and 'gt' not in item


def test_training_with_a_wrong_scale_teacher_fails_before_work(tmp_path):
    opt = tiny_options(tmp_path)
    t = student({'type': 'Compact', 'num_feat': 8, 'num_conv': 2, 'upscale': 4})
    opt['network_t'] = {'type': 'auto'}
    opt['path'].update(pretrain_network_t=save_basicsr(t, tmp_path / 'x4.pth'), param_key_t=None)
    proc = run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'o.yml', opt)], tmp_path)
    assert_one_line_error(proc, 'is a x4 model (Compact', 'but the student is x2')
    assert not (tmp_path / 'experiments').exists()


def test_describe_in_memory_student():
    info = describe(student({'type': 'PLKSR', 'dim': 8, 'n_blocks': 2, 'kernel_size': 5, 'upscale': 3}))
    assert (info.arch, info.scale, info.tiles_exact) == ('PLKSR', 3, True)
