"""``sr-kd report EXPERIMENT_DIR``: a one-page PNG of a run (losses, validation PSNR, crops); prints its path."""
import argparse
import os
import sys

ORDER = 3  # its place in sr-kd --help
HELP = 'a PNG of a training run: losses, validation PSNR, crops of bicubic/student/teacher/HR'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('experiment', help='experiment folder, e.g. experiments/imdn_kd_x4')
    p.add_argument('-o', '--output', help='PNG to write (default: EXPERIMENT/report.png)')
    p.add_argument('--images', type=int, default=3, help='validation images in the crop sheet (default 3)')
    p.add_argument('--crop', type=int, default=96, help='crop side in HR pixels (default 96)')
    p.add_argument('--device', default='cpu', help='cpu or cuda (cuda:N), for the crops\' forward passes')


def run(args: argparse.Namespace) -> int:
    from sr_kd import cli_checks
    from sr_kd.report import make_report
    cli_checks.device(args.device)
    if args.output:
        cli_checks.output_file(args.output, '-o', overwrite=True)
    print(make_report(training_folder(args.experiment), args.output, args.images, args.crop, args.device))
    return 0


def training_folder(folder: str) -> str:
    """The experiment folder to report on: an ``sr-kd distill`` output is not one (its own report.png is the
    teacher | student picture, never overwritten): its training run, experiments/student, is."""
    from sr_kd.commands.distill_cmd import PLAN
    from sr_kd.distill.job import experiment
    if os.path.isfile(os.path.join(folder, PLAN)):
        print(f'{folder} is an sr-kd distill output: reporting on its training run, {experiment(folder)}',
              file=sys.stderr)
        return experiment(folder)
    return folder
