"""Time per training iteration: distillation vs the same student alone, side by side in one run.

    python scripts/bench_kd_step.py [--batch 16 --lq 48 --iters 10 --repeats 3] [--opt options/imdn_kd.yml]

Builds both models from the distillation option file (the student-alone model is the same file with
SRModel and no teacher), feeds them the same random batches and alternates them (A B A B ...), so
machine drift hits both. Prints the median seconds per iteration and the ratio.
"""
import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))


def model_opts(path, batch, lq):
    import sr_kd  # noqa: F401
    from sr_kd.options import load_yaml

    opt = load_yaml(path)
    tmp = tempfile.mkdtemp(prefix='bench_kd_')
    paths = {k: os.path.join(tmp, k) for k in ('models', 'training_states', 'log', 'visualization')}
    for p in paths.values():
        os.makedirs(p)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=torch.cuda.device_count(), auto_resume=False)
    opt['path'].update(experiments_root=tmp, **paths)
    opt['datasets']['train'].update(batch_size_per_gpu=batch, gt_size=lq * opt['scale'])
    kd = copy.deepcopy(opt)
    alone = copy.deepcopy(opt)
    alone['model_type'] = 'SRModel'
    for key in ('network_t', 'distill'):
        alone.pop(key, None)
    alone['train'].pop('distill_opts', None)
    return kd, alone


def main(argv=None):
    p = argparse.ArgumentParser(description='distillation step vs student-alone step')
    p.add_argument('--opt', default='options/imdn_kd.yml')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--lq', type=int, default=48, help='LR patch size')
    p.add_argument('--iters', type=int, default=10, help='iterations per timed block')
    p.add_argument('--repeats', type=int, default=3, help='A/B block pairs')
    args = p.parse_args(argv)

    import sr_kd  # noqa: F401 - compat + registries before basicsr
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger
    get_root_logger().setLevel('WARNING')
    kd_opt, alone_opt = model_opts(args.opt, args.batch, args.lq)
    models = {'distillation': build_model(kd_opt), 'student alone': build_model(alone_opt)}
    scale = kd_opt['scale']
    g = torch.Generator().manual_seed(0)
    batches = [{'lq': torch.rand(args.batch, 3, args.lq, args.lq, generator=g),
                'gt': torch.rand(args.batch, 3, args.lq * scale, args.lq * scale, generator=g)} for _ in range(4)]
    times = {k: [] for k in models}
    for name, m in models.items():  # warm-up
        m.feed_data(batches[0])
        m.optimize_parameters(1)
    for _ in range(args.repeats):
        for name, m in models.items():
            t0 = time.perf_counter()
            for i in range(args.iters):
                m.feed_data(batches[i % len(batches)])
                m.optimize_parameters(i + 2)
            times[name].append((time.perf_counter() - t0) / args.iters)
    device = 'cuda' if torch.cuda.is_available() else f'cpu ({torch.get_num_threads()} threads)'
    print(f'device: {device}; batch {args.batch}, LR patch {args.lq}, x{scale}; '
          f'{args.repeats} blocks of {args.iters} iterations each')
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f'{k:<14} {v * 1000:8.1f} ms/iter   (blocks: {", ".join(f"{t * 1000:.1f}" for t in times[k])})')
    print(f'ratio distillation / student alone: {med["distillation"] / med["student alone"]:.2f}x')


if __name__ == '__main__':
    main()
