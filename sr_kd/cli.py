"""The ``sr-kd`` console script. Each subcommand lives in its own room; this file only dispatches."""
import argparse
import sys

from sr_kd.errors import exit_on_user_error

# (subcommand, module that defines add_arguments(parser) and run(args) -> exit status)
SUBCOMMANDS = [
    ('eval', 'sr_kd.commands.eval_cmd', 'PSNR/SSIM (Y channel, border = scale) of a checkpoint on a benchmark folder'),
    ('upscale', 'sr_kd.commands.upscale_cmd', 'upscale image files, folders and globs with a checkpoint'),
    ('export', 'sr_kd.commands.export_cmd', 'export a checkpoint to ONNX (dynamic height and width) or TorchScript'),
    ('report', 'sr_kd.commands.report_cmd', 'a PNG of a training run: losses, validation PSNR, crops of bicubic/student/teacher/HR'),
    ('cache-teacher', 'sr_kd.commands.cache_teacher_cmd',
     'build the offline teacher cache of an option file (distill.teacher: offline) ahead of training'),
]


def build_parser():
    import importlib
    parser = argparse.ArgumentParser(prog='sr-kd', description='Knowledge distillation for super-resolution.')
    sub = parser.add_subparsers(dest='command', required=True)
    for name, module, help_text in SUBCOMMANDS:
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    with exit_on_user_error('sr-kd'):
        import sr_kd  # noqa: F401 - compat + registries before any basicsr use
        return args._run(args) or 0


if __name__ == '__main__':
    sys.exit(main())
