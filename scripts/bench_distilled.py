"""The speed of a distilled student against its teacher, side by side in one run, as ``sr-kd upscale`` runs
them (whole images, eager backend, ``--precision auto``): every held-out image of an ``sr-kd distill``
output folder, teacher and student alternating, best of ``--repeats`` per image.

    python -m scripts.bench_distilled OUT [--threads N] [--repeats 3] [--precision auto|fp32|bf16]

Run it on a quiet machine: it prints the total time of each and their ratio (docs/distill.md).
"""
import argparse
import json
import os
import time

import torch


def main() -> None:
    import sr_kd
    sr_kd.load()
    from sr_kd.archs.loading import load_model
    from sr_kd.backends import prepare, resolve_precision
    from sr_kd.distill.job import read_input
    from sr_kd.inference import upscale
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--precision', default='auto', help="upscale's --precision, for both (default auto)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(os.path.join(args.out, 'distill.json')) as f:
        plan = json.load(f)
    precision = resolve_precision(args.precision, 'cpu', 'eager')
    runners = {}
    for who, path in (('teacher', plan['teacher']), ('student', os.path.join(args.out, 'student.safetensors'))):
        model, info = load_model(path)
        runners[who] = (prepare('eager', model.to(memory_format=torch.channels_last), info, precision), info)
    total = {'teacher': 0.0, 'student': 0.0}
    for path in plan['held_out']:
        x = read_input(path, runners['teacher'][1].scale, plan['hr'])
        for who, (runner, info) in runners.items():
            upscale(runner.fn, x, info, precision=runner.autocast, channels_last=True)  # warm-up
            best = float('inf')
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                upscale(runner.fn, x, info, precision=runner.autocast, channels_last=True)
                best = min(best, time.perf_counter() - t0)
            total[who] += best
    print(f'{len(plan["held_out"])} held-out images, eager {precision}, {torch.get_num_threads()} threads: '
          f'teacher {total["teacher"]:.2f} s, student {total["student"]:.2f} s, '
          f'student {total["teacher"] / total["student"]:.2f}x faster')


if __name__ == '__main__':
    main()
