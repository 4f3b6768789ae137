"""``sr-kd export``: ONNX with dynamic batch/height/width matches PyTorch under onnxruntime."""
import numpy as np
import pytest
import torch

import sr_kd  # noqa: F401
from sr_kd.archs import IMDN, IMDN_AS
from sr_kd.cli import main

ort = pytest.importorskip('onnxruntime')


def save(tmp_path, cls, **kw):
    torch.manual_seed(0)
    net = cls(num_feat=16, num_modules=2, **kw).eval()
    path = tmp_path / f'{cls.__name__}.pth'
    torch.save({'params': net.state_dict()}, path)
    return net, str(path)


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return sess.run(['sr'], {'lr': x.numpy()})[0]


def test_onnx_matches_pytorch_at_any_size(tmp_path, capsys):
    net, ckpt = save(tmp_path, IMDN, upscale=3)
    out = tmp_path / 'imdn.onnx'
    assert main(['export', ckpt, '--onnx', str(out)]) == 0
    assert 'onnxruntime matches PyTorch' in capsys.readouterr().out
    for shape in [(1, 3, 29, 43), (2, 3, 16, 20)]:  # not the export's example size
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = net(x).numpy()
        assert np.abs(run_onnx(out, x) - want).max() < 1e-4


def test_imdn_as_onnx_takes_multiples_of_4(tmp_path):
    from sr_kd.export import export_onnx, onnx_max_diff
    from sr_kd.archs.loading import describe
    net, _ = save(tmp_path, IMDN_AS)
    info = describe(net)
    export_onnx(net, info, tmp_path / 'as.onnx')
    assert onnx_max_diff(net, info, str(tmp_path / 'as.onnx'), size=(44, 36)) < 1e-4


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_torchscript(tmp_path):
    net, ckpt = save(tmp_path, IMDN, upscale=2)
    out = tmp_path / 'imdn.pt'
    assert main(['export', ckpt, '--torchscript', str(out)]) == 0
    x = torch.rand(1, 3, 21, 34)
    with torch.no_grad():
        assert (torch.jit.load(str(out))(x) - net(x)).abs().max() < 1e-5


def test_nothing_to_export_is_a_user_error(tmp_path):
    _, ckpt = save(tmp_path, IMDN, upscale=2)
    with pytest.raises(SystemExit) as e:
        main(['export', ckpt])
    assert e.value.code == 2


def test_export_says_nothing_of_torch_internals(tmp_path):
    """torch.export's own deprecation notices (FutureWarning on LeafSpec) reached the user of `sr-kd distill`
    and `sr-kd export` as noise they cannot act on."""
    import warnings
    from sr_kd.archs.loading import describe
    from sr_kd.export import export_onnx
    net, _ = save(tmp_path, IMDN, upscale=4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        export_onnx(net, describe(net), tmp_path / 'imdn.onnx')
    assert not [w for w in seen if issubclass(w.category, FutureWarning)], [str(w.message) for w in seen]


@pytest.mark.parametrize('flag, name', [('--safetensors', 'm.safetensors'), ('--onnx', 'm.onnx')])
def test_exported_files_get_the_users_usual_permissions(tmp_path, flag, name):
    """safetensors writes its file as mkstemp does (0600): others on the machine (a shared models folder, a
    web UI under another user) could not read the student; every output is 0666 less the umask."""
    import os
    _, ckpt = save(tmp_path, IMDN, upscale=2)
    old = os.umask(0o022)
    try:
        assert main(['export', ckpt, flag, str(tmp_path / name)]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
