"""The onnxruntime backend: the model exported to ONNX once (``sr_kd.export``, dynamic batch/height/width),
cached, and run by onnxruntime's CPU execution provider with all graph optimisations.

int8: static quantisation (QDQ, per-channel int8 weights, uint8 activations, min/max calibration) on LR
crops of a few scikit-image photographs, so it needs no data of the user's. Its quality cost is measured
when it is built, on two other photographs (PSNR on Y against their HR, fp32 ONNX vs int8), recorded in
the cache entry, and int8 is refused when that cost exceeds ``INT8_MAX_COST_DB`` unless forced.
"""
import copy
import logging
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch

from sr_kd.backends.base import Backend, Options, Runner, installed
from sr_kd.backends.cache import Entry, model_digest
from sr_kd.errors import SRKDError

if TYPE_CHECKING:
    import onnxruntime

    from sr_kd.archs.description import ModelInfo

INT8_MAX_COST_DB = 0.05  # largest PSNR loss int8 may cost on the check images without --force-int8
CALIBRATION = ('astronaut', 'rocket', 'motorcycle_left', 'coins')   # scikit-image photographs
CHECK = ('chelsea', 'coffee')                                       # held out: the int8 quality check
CROP = 96                                                           # LR crop side for calibration and check


def _versions():
    import onnxruntime
    return {'torch': torch.__version__, 'onnxruntime': onnxruntime.__version__}


def _shape_policy(info):
    return f'dynamic batch/height/width, sides multiple of {info.size_multiple}'


def _lr_crops(names, scale, info):
    """(LR crop as 1x3xHxW float32 array, its HR crop as uint8) for scikit-image photographs."""
    from sr_kd.data.image_source import _skimage_path
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.ops.matlab_resize import bicubic_lr, imresize

    out = []
    for name in names:
        hr = read_rgb_uint8(_skimage_path(name))
        lr = bicubic_lr(hr, scale)
        h, w = lr.shape[:2]
        y, x = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
        lr = lr[y:y + CROP, x:x + CROP]
        hr = hr[y * scale:(y + lr.shape[0]) * scale, x * scale:(x + lr.shape[1]) * scale]
        if info.resizes_input:
            lr = imresize(lr, output_shape=hr.shape[:2])
        out.append((np.ascontiguousarray(np.asarray(lr).transpose(2, 0, 1)[None], dtype=np.float32) / 255, hr))
    return out


def session(path: str, threads: Optional[int] = None) -> 'onnxruntime.InferenceSession':
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


def _fp32_entry(model, info, options):
    from sr_kd.export import export_onnx

    key = {'backend': 'onnxruntime', 'model': model_digest(model), 'precision': 'fp32', 'shapes': _shape_policy(info)}
    entry = Entry(key, _versions(), '.onnx', options.cache_root)
    return entry.get(lambda tmp: export_onnx(copy.deepcopy(model), info, tmp), f'the ONNX export of {info.label}')


def _y_psnr(sess, pairs, scale):
    from sr_kd.export import INPUT, OUTPUT
    from sr_kd.ops.metrics import psnr_ssim_y, to_uint8

    return float(np.mean([psnr_ssim_y(to_uint8(torch.from_numpy(sess.run([OUTPUT], {INPUT: lr})[0])), hr, scale)[0]
                          for lr, hr in pairs]))


def quantize_int8(fp32_path: str, out_path: str, info: 'ModelInfo') -> float:
    """Write the int8 model; returns its measured PSNR cost on the check photographs (dB, fp32 - int8)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from sr_kd.export import INPUT

    calibration = iter([{INPUT: lr} for lr, _ in _lr_crops(CALIBRATION, info.scale, info)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(calibration, None)

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # 'consider pre-processing'
    quantize_static(fp32_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    check = _lr_crops(CHECK, info.scale, info)
    return _y_psnr(session(fp32_path), check, info.scale) - _y_psnr(session(out_path), check, info.scale)


def _int8_entry(model, info, options, fp32_path):
    key = {'backend': 'onnxruntime', 'model': model_digest(model), 'precision': 'int8', 'shapes': _shape_policy(info),
           'calibration': list(CALIBRATION), 'check': list(CHECK), 'crop': CROP}
    entry = Entry(key, _versions(), '.onnx', options.cache_root)

    def make(tmp):
        return {'psnr_cost_db': round(quantize_int8(fp32_path, tmp, info), 4)}
    return entry.get(make, f'the int8 quantisation of {info.label} (calibrated on {len(CALIBRATION)} photographs)')


def as_callable(sess: 'onnxruntime.InferenceSession') -> Callable[[torch.Tensor], torch.Tensor]:
    """tensor -> tensor through an onnxruntime session (NCHW float32 in and out)."""
    from sr_kd.export import INPUT, OUTPUT

    def run(x):
        a = x.detach().to('cpu', torch.float32).contiguous().numpy()
        return torch.from_numpy(sess.run([OUTPUT], {INPUT: a})[0]).to(x.device)
    return run


def prepare_onnxruntime(model: torch.nn.Module, info: 'ModelInfo', precision: str, options: Options,
                        exact_tiles: bool = False) -> Runner:
    if info.resizes_input and precision == 'int8':
        raise SRKDError(f'int8 is offered for models that take the LR image itself, not {info.label}')
    path, meta, built = _fp32_entry(model, info, options)
    note = f'built in {meta["build_seconds"]:.0f} s' if built else 'cached'
    if precision == 'int8':
        path, meta, built = _int8_entry(model, info, options, path)
        cost = meta['psnr_cost_db']
        note = f'{"built" if built else "cached"}; int8 costs {cost:.3f} dB on {"/".join(CHECK)}'
        if cost > INT8_MAX_COST_DB and not options.force_int8:
            raise SRKDError(f'int8 costs {cost:.3f} dB PSNR for {info.label} on the check photographs '
                            f'(> {INT8_MAX_COST_DB} dB): refused; --force-int8 runs it anyway')
    return Runner(fn=as_callable(session(path)), backend='onnxruntime', precision=precision, autocast='fp32',
                  eager=False, note=note)


def missing() -> Optional[str]:
    for module, what in (('onnxruntime', 'onnxruntime'), ('onnxscript', 'onnxscript (the ONNX exporter)')):
        if not installed(module):
            return f'{what} is not installed (pip install sr_kd[export])'
    return None


BACKEND = Backend('onnxruntime', ('fp32', 'int8'), 'onnxruntime (the model exported to ONNX; int8 quantised)',
                  prepare_onnxruntime, missing)
