"""``sr-kd cache-teacher -opt X.yml``: build the offline teacher cache of an option file ahead of training
(``distill.teacher: offline``; training builds it too when it is missing)."""
import argparse

ORDER = 6  # its place in sr-kd --help
HELP = 'build the offline teacher cache of an option file (distill.teacher: offline) ahead of training'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('-opt', '--opt', required=True, help='the distillation option file (the one you train with)')
    p.add_argument('--device', default='cpu', help="device the teacher runs on (default cpu; 'cuda' on a GPU)")


def run(args: argparse.Namespace) -> int:
    import torch

    from sr_kd.distill.teacher import cache_for_options
    from sr_kd.run_paths import root_path
    from sr_kd.options import load_yaml

    opt = load_yaml(args.opt)
    cache = cache_for_options(opt, torch.device(args.device), root_path())
    print(f'teacher cache ready: {cache.folder} ({len(cache.stems)} images)')
    return 0
