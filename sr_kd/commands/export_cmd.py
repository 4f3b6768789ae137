"""``sr-kd export``: a checkpoint as ONNX (dynamic batch, height, width), TorchScript and/or safetensors."""
import argparse

ORDER = 2  # its place in sr-kd --help
HELP = 'export a checkpoint to ONNX (dynamic height and width) or TorchScript'

TOLERANCE = 1e-4  # largest |onnxruntime - PyTorch| accepted on the check image


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('model', metavar='CKPT',
                   help='weights file (.pth, .safetensors), sr_kd\'s or any model spandrel knows; the '
                        'architecture is read from it')
    p.add_argument('--onnx', metavar='OUT.onnx',
                   help='write an ONNX file (input "lr", output "sr", NCHW float32 in [0, 1])')
    p.add_argument('--torchscript', metavar='OUT.pt',
                   help='write a traced TorchScript module (deprecated in torch 2.x)')
    p.add_argument('--safetensors', metavar='OUT.safetensors',
                   help='write the weights as safetensors (spandrel, chaiNNer and ComfyUI load the file as it is)')
    p.add_argument('--opset', type=int, default=18, help='ONNX opset (default 18)')
    p.add_argument('--param-key', default=None, help='key inside the checkpoint (default: params_ema, params or none)')
    p.add_argument('--no-check', action='store_true', help='skip running the ONNX file with onnxruntime after export')
    p.add_argument('--overwrite', action='store_true', help='replace existing output files (default: refuse)')


def run(args: argparse.Namespace) -> int:
    from sr_kd.archs.loading import load_model
    from sr_kd.errors import SRKDError
    from sr_kd.export import export_onnx, export_safetensors, export_torchscript, onnx_max_diff

    if not args.onnx and not args.torchscript and not args.safetensors:
        raise SRKDError('nothing to export: give --onnx OUT.onnx, --torchscript OUT.pt and/or --safetensors OUT')
    from sr_kd import cli_checks
    for flag, path in (('--onnx', args.onnx), ('--torchscript', args.torchscript), ('--safetensors', args.safetensors)):
        if path:  # before any work
            cli_checks.output_file(path, flag, args.overwrite)
    model, info = load_model(args.model, args.param_key)
    name = info.label
    if args.onnx:
        export_onnx(model, info, args.onnx, args.opset)
        print(f'wrote {args.onnx} ({name}, opset {args.opset}, dynamic batch/height/width)')
        if not args.no_check:
            diff = onnx_max_diff(model, info, args.onnx)
            if diff > TOLERANCE:
                raise SRKDError(f'{args.onnx} differs from PyTorch by {diff:.2e} under onnxruntime (> {TOLERANCE})')
            print(f'onnxruntime matches PyTorch: max |diff| {diff:.2e} on a random image')
    if args.torchscript:
        export_torchscript(model, info, args.torchscript)
        print(f'wrote {args.torchscript} ({name}, traced TorchScript)')
    if args.safetensors:
        export_safetensors(model, args.safetensors)
        print(f'wrote {args.safetensors} ({name}, safetensors weights)')
    return 0
