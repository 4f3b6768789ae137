"""Every student preset of ``sr-kd distill`` timed side by side with a teacher, as ``distill --student auto``
times them (whole image, eager backend, ``upscale``'s auto precision), on a quiet machine.

    python -m scripts.bench_students [TEACHER] [--image PATH] [--threads N] [--precision fp32|bf16]

Prints the table and which preset ``auto`` takes at speed-ups 4 and 8 (docs/distill.md).
"""
import argparse
import os
from typing import TYPE_CHECKING, Tuple

import torch

from scripts.study_core import SHARED

if TYPE_CHECKING:
    from sr_kd.archs.description import ModelInfo


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the one-image speed benchmarks: a teacher, an image, threads and precision."""
    p = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    p.add_argument('teacher', nargs='?', default=os.path.join(SHARED, 'pretrained', 'realesr-animevideov3.pth'))
    p.add_argument('--image', default=os.path.join(SHARED, 'train', 'bsd200_100075.png'))
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--precision', default='auto')
    return p


def bench_inputs(args: argparse.Namespace) -> Tuple[torch.nn.Module, 'ModelInfo', torch.Tensor, str]:
    """(teacher, its ModelInfo, the image as a 1x3xHxW tensor, the resolved precision); threads set."""
    import sr_kd
    sr_kd.load()
    from sr_kd.archs.loading import load_model
    from sr_kd.backends import resolve_precision
    from sr_kd.image_io import read_rgb_uint8
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher, info = load_model(args.teacher)
    x = torch.from_numpy(read_rgb_uint8(args.image).copy()).permute(2, 0, 1)[None].float().div_(255)
    return teacher, info, x, resolve_precision(args.precision, 'cpu', 'eager')


def main() -> None:
    args = bench_parser(__doc__).parse_args()
    teacher, info, x, precision = bench_inputs(args)
    from sr_kd.distill import students
    from sr_kd.errors import SRKDError
    rows = students.time_candidates(teacher, info, info.scale, x, precision)
    print(f'{info.label} on {os.path.basename(args.image)} ({x.shape[3]}x{x.shape[2]}), eager {precision}, '
          f'{torch.get_num_threads()} threads')
    print(students.speed_table(rows))
    for k in (4, 8):
        try:
            print(f'--speedup {k}: auto takes {students.choose(rows, k).name}')
        except SRKDError as e:
            print(f'--speedup {k}: {e}')


if __name__ == '__main__':
    main()
