"""Time per training iteration of every way to run the teacher, against the student alone, in one run.

    python -m scripts.bench_kd_step [--batch 8 --lq 24 --iters 10 --repeats 3] [--opt options/imdn_kd.yml]
        [--teacher ../shared/pretrained/IMDN_x4.pth]   # the official teacher (param_key_t ~)

Builds, from one distillation option file: the student alone (SRModel, no teacher); distillation with the
online teacher in fp32 and in bf16; distillation with the offline teacher (its cache built first, not
timed), also stepped after the last fade so that only the terms kept to the end run; and the bare
teacher forward in fp32 and bf16. All get the same real batches of the option file's
training set and run in alternation (A B C ... A B C ...), so machine drift hits each alike. Prints the
median seconds per iteration, each ratio to the student alone, and each online step against its floor
(student step + teacher forward at that precision, measured here).
"""
import argparse
import copy
import os
import statistics
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import torch



def model_opts(path: str, batch: int, lq: int, teacher: Optional[str] = None, bf16: bool = True) -> Dict[str, dict]:
    """{name: option dict} of the variants, sharing one temporary experiment folder."""
    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from sr_kd.options import load_yaml

    opt = load_yaml(path)
    tmp = tempfile.mkdtemp(prefix='bench_kd_')
    paths = {k: os.path.join(tmp, k) for k in ('models', 'training_states', 'log', 'visualization')}
    for p in paths.values():
        os.makedirs(p)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=torch.cuda.device_count(), auto_resume=False)
    opt['path'].update(experiments_root=os.path.join(tmp, 'run'), **paths)
    if teacher:
        opt['path'].update(pretrain_network_t=teacher, param_key_t=None)
    opt['datasets']['train'].update(batch_size_per_gpu=batch, gt_size=lq * opt['scale'], phase='train',
                                    scale=opt['scale'])
    variants = {}
    alone = copy.deepcopy(opt)
    alone['model_type'] = 'SRModel'
    for key in ('network_t', 'distill'):
        alone.pop(key, None)
    alone['train'].pop('distill_opts', None)
    variants['student alone'] = alone
    kinds = [('online fp32', {'teacher': 'online', 'teacher_precision': 'fp32'}),
             ('online bf16', {'teacher': 'online', 'teacher_precision': 'bf16'}),
             ('offline', {'teacher': 'offline', 'teacher_cache': os.path.join(tmp, 'cache')})]
    for name, distill in kinds if bf16 else kinds[::2]:
        v = copy.deepcopy(opt)
        v['distill'] = dict(v.get('distill') or {}, **distill)
        variants[name] = v
    variants['offline, faded'] = copy.deepcopy(variants['offline'])  # stepped after the last term's fade ends
    return variants


def last_fade_end(opt: dict) -> int:
    """The iteration after which every term that fades has faded (0 when none fades)."""
    from sr_kd.rules import term_fades
    return max([f[1] for f in term_fades(opt) if f] or [0])


def real_batches(opt: dict, n: int) -> List[dict]:
    """n batches of the option file's training set (crops, flips, paths: what the offline teacher reads)."""
    from basicsr.data import build_dataset
    ds = build_dataset(opt['datasets']['train'])
    batch = opt['datasets']['train']['batch_size_per_gpu']
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=n * batch,
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler)
    it = iter(loader)
    return [next(it) for _ in range(n)]


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description='distillation step (online fp32/bf16, offline) vs student-alone step')
    p.add_argument('--opt', default='options/imdn_kd.yml')
    p.add_argument('--teacher', help='teacher weights (plain state dict, e.g. the official IMDN_x4.pth)')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--lq', type=int, default=24, help='LR patch size')
    p.add_argument('--iters', type=int, default=10, help='iterations per timed block')
    p.add_argument('--repeats', type=int, default=3, help='rounds over all variants')
    p.add_argument('--bf16', choices=('auto', 'yes', 'no'), default='auto',
                   help='time the bf16 teacher too (auto: where the CPU has bf16 instructions or on CUDA; '
                        'emulated bf16 is 25x slower than fp32 on a CPU without them)')
    args = p.parse_args(argv)

    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger

    from sr_kd.distill.teacher import run_teacher
    from sr_kd.hardware import bf16_is_native, cpu_has_bf16
    get_root_logger().setLevel('WARNING')
    native = bf16_is_native('cuda' if torch.cuda.is_available() else 'cpu')  # teacher_precision auto's rule
    bf16 = args.bf16 == 'yes' or (args.bf16 == 'auto' and native)
    variants = model_opts(args.opt, args.batch, args.lq, args.teacher, bf16)
    models = {name: build_model(opt) for name, opt in variants.items()}  # builds the offline cache (untimed)
    teacher = models['online fp32'].net_t
    batches = real_batches(variants['offline'], 4)
    late = {'offline, faded': last_fade_end(variants['offline'])}  # iterations are counted from here
    steps = {name: (lambda m, o: lambda b, i: (m.feed_data(b), m.optimize_parameters(o + i)))(m, late.get(name, 0))
             for name, m in models.items()}
    for dtype, label in ((None, 'teacher fp32'), (torch.bfloat16, 'teacher bf16'))[:2 if bf16 else 1]:
        steps[label] = (lambda dt: lambda b, i: run_teacher(teacher, b['lq'], dt))(dtype)
    times = {k: [] for k in steps}
    for name, step in steps.items():  # warm-up
        step(batches[0], 1)
    for _ in range(args.repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for i in range(args.iters):
                step(batches[i % len(batches)], i + 2)
            times[name].append((time.perf_counter() - t0) / args.iters)
    device = 'cuda' if torch.cuda.is_available() else f'cpu ({torch.get_num_threads()} threads)'
    print(f'device: {device}; CPU bf16 instructions: {"yes" if cpu_has_bf16() else "no"} '
          f'(teacher_precision auto -> {"bf16" if native else "fp32"}); '
          f'batch {args.batch}, LR patch {args.lq}, x{variants["offline"]["scale"]}; '
          f'{args.repeats} rounds of {args.iters} iterations; teacher {variants["offline"]["path"]["pretrain_network_t"]}')
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med['student alone']
    for k, v in med.items():
        print(f'{k:<14} {v * 1000:8.1f} ms/iter  {v / base:5.2f}x student   '
              f'(rounds: {", ".join(f"{t * 1000:.1f}" for t in times[k])})')
    print(f'offline distillation / student alone: {med["offline"] / base:.2f}x (target <= 1.10x)')
    print(f'offline, after iteration {late["offline, faded"]} (the terms that fade have faded; the others run): '
          f'{med["offline, faded"] / base:.2f}x')
    if not bf16:
        print('bf16 teacher not timed: this CPU has no bf16 instructions, so teacher_precision auto runs it in fp32 '
              '(--bf16 yes times the emulated one)')
    for prec in ('fp32', 'bf16')[:2 if bf16 else 1]:
        floor = base + med[f'teacher {prec}']
        print(f'online {prec} / its floor (student step + teacher {prec} forward = {floor * 1000:.1f} ms): '
              f'{med[f"online {prec}"] / floor:.2f}x (target <= 1.10x)')


if __name__ == '__main__':
    main()
