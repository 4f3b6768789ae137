"""``sr-kd eval``: a checkpoint's PSNR/SSIM on an HR folder, with LR from a folder or made by MATLAB bicubic."""
import argparse
import json

from sr_kd.backends import ALL_PRECISIONS
from sr_kd.backends import NAMES as BACKENDS

ORDER = 0  # its place in sr-kd --help
HELP = 'PSNR/SSIM (Y channel, border = scale) of a checkpoint on a benchmark folder'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', required=True,
                   help='weights file (.pth, .safetensors), sr_kd\'s or any model spandrel knows; the '
                        'architecture is read from it')
    p.add_argument('--hr', required=True, help='folder of HR images')
    p.add_argument('--lr', help='folder of LR images (EDSR names, e.g. babyx4.png); default: made from HR '
                                'with MATLAB-compatible bicubic')
    p.add_argument('--scale', type=int, required=True, choices=range(1, 9), metavar='S',
                   help='the model\'s scale, 1 to 8 (also the border cropped before PSNR/SSIM)')
    p.add_argument('--param-key', default=None, help="key inside the checkpoint (default: params_ema, params or none)")
    p.add_argument('--device', default='cpu', help='cpu or cuda (cuda:N)')
    p.add_argument('--json', help='write the per-image and mean results here')
    p.add_argument('--backend', choices=list(BACKENDS), default='eager',
                   help='run the model as sr-kd upscale --backend does (fp32 backends give the same numbers)')
    p.add_argument('--precision', choices=list(ALL_PRECISIONS), default='fp32',
                   help='numeric precision of the model (default fp32, as papers measure; auto: as upscale)')
    p.add_argument('--force-int8', action='store_true', help='run int8 even where it costs more than 0.05 dB')


def run(args: argparse.Namespace) -> int:
    import sys

    from sr_kd.archs.loading import load_model
    from sr_kd.evaluate import evaluate

    from sr_kd.backends import Options, check, prepare, resolve_precision

    from sr_kd import cli_checks
    cli_checks.device(args.device)  # before any work
    if args.json:
        cli_checks.output_file(args.json, '--json', overwrite=True)
    args.precision = resolve_precision(args.precision, args.device, args.backend)
    check(args.backend, args.precision, args.device)
    model, info = load_model(args.model, args.param_key, args.device, expect_scale=args.scale)
    if args.backend != 'eager' or args.precision != 'fp32':
        model = prepare(args.backend, model, info, args.precision,
                        Options(device=args.device, force_int8=args.force_int8)).standalone()
    res = evaluate(model, info, args.hr, args.scale, args.lr, args.device, progress=sys.stderr.isatty())
    width = max(len(r['name']) for r in res['images'] + [{'name': 'mean'}])
    print(f'{"image":<{width}}  {"PSNR":>8}  {"SSIM":>7}')
    for r in res['images']:
        print(f'{r["name"]:<{width}}  {r["psnr"]:8.4f}  {r["ssim"]:7.4f}')
    print(f'{"mean":<{width}}  {res["mean"]["psnr"]:8.4f}  {res["mean"]["ssim"]:7.4f}')
    if args.json:
        from sr_kd.atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps(res, indent=2))
    return 0
