"""Export a network to ONNX (dynamic batch, height and width), TorchScript and safetensors; check the ONNX file.

Deployment targets (onnxruntime, TensorRT, ncnn, chaiNNer) take ONNX; the check runs the exported file
with onnxruntime so a broken export is caught where it is made, not on a user's machine.
"""
import warnings
from typing import TYPE_CHECKING, Tuple

import torch

from sr_kd.atomic import atomic_path
from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo

INPUT, OUTPUT = 'lr', 'sr'


def _example_and_dims(info):
    """An example input and the dynamic dims; sides stay multiples of the model's size multiple."""
    n = torch.export.Dim('batch', min=1)
    m = info.size_multiple
    x = torch.rand(1, info.in_channels, 64, 64)
    if m > 1:
        hq, wq = torch.export.Dim(f'h{m}', min=2), torch.export.Dim(f'w{m}', min=2)
        return x, {0: n, 2: m * hq, 3: m * wq}
    h, w = torch.export.Dim('height', min=2), torch.export.Dim('width', min=2)
    return x, {0: n, 2: h, 3: w}


def export_onnx(model: torch.nn.Module, info: 'ModelInfo', path: str, opset: int = 18) -> None:
    """Write ``model`` as one self-contained ONNX file with input 'lr' and output 'sr' (NCHW, float32)."""
    x, dims = _example_and_dims(info)
    model = model.float().eval().to(memory_format=torch.contiguous_format).cpu()

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # torch.export's own deprecation notice (LeafSpec, torch 2.13): nothing a user can act on
        warnings.filterwarnings('ignore', message='.*LeafSpec.*', category=FutureWarning)
        torch.onnx.export(model, (x,), tmp, input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                          dynamic_shapes={'x': dims}, dynamo=True, external_data=False, verbose=False)


def export_torchscript(model: torch.nn.Module, info: 'ModelInfo', path: str) -> None:
    """Write a traced TorchScript module (TorchScript is deprecated in torch 2.x; ONNX is the main path)."""
    x, _ = _example_and_dims(info)
    model = model.float().eval().cpu()
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
    with atomic_path(path) as tmp:
        traced.save(tmp)


def onnx_max_diff(model: torch.nn.Module, info: 'ModelInfo', path: str, size: Tuple[int, int] = (37, 53),
                  seed: int = 0) -> float:
    """Largest |onnxruntime - PyTorch| on a random image of ``size`` (rounded down to the size multiple)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise SRKDError('checking the export needs onnxruntime (pip install sr_kd[export])') from e
    h, w = size
    h, w = h - h % info.size_multiple, w - w % info.size_multiple
    x = torch.rand(1, info.in_channels, h, w, generator=torch.Generator().manual_seed(seed))
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = torch.from_numpy(sess.run([OUTPUT], {INPUT: x.numpy()})[0])
    with torch.inference_mode():
        want = model.float().cpu()(x)
    if got.shape != want.shape:
        raise SRKDError(f'the ONNX model gives {tuple(got.shape)} for {tuple(x.shape)}, PyTorch {tuple(want.shape)}')
    return float((got - want).abs().max())


def export_safetensors(model: torch.nn.Module, path: str) -> None:
    """The weights as one .safetensors file (contiguous CPU tensors): spandrel, chaiNNer and ComfyUI load it
    as they load the .pth, without unpickling anything."""
    try:
        from safetensors.torch import save_file
    except ImportError as e:
        raise SRKDError('writing .safetensors needs the safetensors package (bash scripts/install.sh)') from e
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(sd, tmp, metadata={'format': 'pt'})
