"""What the fused tail (sr_kd.archs.compact_fused) gains: spandrel's Compact module against the eager
backend's fused form, side by side in one run, on the teacher and on every Compact student preset (whole
image, ``upscale`` at the given precision, channels-last, best of ``--repeats`` in alternating rounds).

    python -m scripts.bench_compact_tail [TEACHER] [--image PATH] [--threads N] [--precision auto|fp32|bf16]

Run it on a quiet machine (docs/distill.md).
"""
import argparse
import os
import time

import torch

from scripts.study_core import SHARED


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    import sr_kd
    sr_kd.load()
    from sr_kd.archs.compact_fused import fused
    from sr_kd.archs.loading import load_model
    from sr_kd.backends import resolve_precision
    from sr_kd.distill import students
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.inference import upscale
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('teacher', nargs='?', default=os.path.join(SHARED, 'pretrained', 'realesr-animevideov3.pth'))
    p.add_argument('--image', default=os.path.join(SHARED, 'train', 'bsd200_100075.png'))
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--precision', default='auto')
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, 'cpu', 'eager')
    x = torch.from_numpy(read_rgb_uint8(args.image).copy()).permute(2, 0, 1)[None].float().div_(255)
    models = {'teacher': load_model(args.teacher)}
    for name, net_opt in students.PRESETS.items():
        if net_opt['type'] == 'Compact':
            models[name] = students.inference_form(students.network_opt(name, models['teacher'][1].scale))
    print(f'{os.path.basename(args.image)} ({x.shape[3]}x{x.shape[2]}), eager {precision}, '
          f'{torch.get_num_threads()} threads: ms per image, best of {args.repeats} in alternating rounds')
    print(f'{"network":<14} {"spandrel":>9} {"fused":>9} {"gain":>7}')
    for name, (model, info) in models.items():
        model = model.eval().to(memory_format=torch.channels_last)
        forms = {'spandrel': model, 'fused': fused(model)}
        runs = {k: (lambda f=form: upscale(f, x, info, precision=precision, channels_last=True))
                for k, form in forms.items()}
        for run in runs.values():  # warm-up
            run()
        ms = {k: float('inf') for k in runs}
        for _ in range(args.repeats):
            for k, run in runs.items():
                ms[k] = min(ms[k], _ms(run))
        print(f'{name:<14} {ms["spandrel"]:>9.1f} {ms["fused"]:>9.1f} {ms["spandrel"] / ms["fused"]:>6.2f}x')


if __name__ == '__main__':
    main()
