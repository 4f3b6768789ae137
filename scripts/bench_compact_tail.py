"""What the fused tail (sr_kd.archs.compact_fused) gains: spandrel's Compact module against the eager
backend's fused form, side by side in one run, on the teacher and on every Compact student preset (whole
image, ``upscale`` at the given precision, channels-last, best of ``--repeats`` in alternating rounds).

    python -m scripts.bench_compact_tail [TEACHER] [--image PATH] [--threads N] [--precision auto|fp32|bf16]

Run it on a quiet machine (docs/distill.md).
"""
import os
import time

import torch

from scripts.bench_students import bench_inputs, bench_parser


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    p = bench_parser(__doc__)
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    teacher, info, x, precision = bench_inputs(args)
    from sr_kd.archs.compact_fused import fused
    from sr_kd.distill import students
    from sr_kd.inference import upscale
    models = {'teacher': (teacher, info)}
    for name, net_opt in students.PRESETS.items():
        if net_opt['type'] == 'Compact':
            models[name] = students.inference_form(students.network_opt(name, info.scale))
    print(f'{os.path.basename(args.image)} ({x.shape[3]}x{x.shape[2]}), eager {precision}, '
          f'{torch.get_num_threads()} threads: ms per image, best of {args.repeats} in alternating rounds')
    print(f'{"network":<14} {"spandrel":>9} {"fused":>9} {"gain":>7}')
    for name, (model, model_info) in models.items():
        model = model.eval().to(memory_format=torch.channels_last)
        forms = {'spandrel': model, 'fused': fused(model)}
        runs = {k: (lambda f=form: upscale(f, x, model_info, precision=precision, channels_last=True))
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
