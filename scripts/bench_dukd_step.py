"""What DUKD's terms cost per training iteration, against the same student alone, side by side in one run.

    python -m scripts.bench_dukd_step [--teacher ../shared/pretrained/IMDN_x4.pth] [--batch 8 --lq 24]
                                      [--threads 1 --rounds 30]

Builds from options/dukd.yml (the paper's recipe) one model per variant: the student alone (SRModel, no
teacher), output distillation only, + label consistency on zoom-in tiles, + the zoom-out terms, the full
recipe, zoom-in without augmentation in place of label consistency, and label consistency on the LR batch
itself in place of the zoom-in tiles (no second teacher forward). All get the same random batches
and run in turn, one iteration each per round (A B C ... A B C ...), so drift and the load of other
processes hit all alike. Prints per variant the median wall-clock and the median CPU time (this process,
one thread by default) per iteration over the rounds, and their ratios to the student alone: on a
machine shared with other jobs the wall clock includes waiting for a core, the CPU time does not.
"""
import argparse
import copy
import os
import statistics
import tempfile
import time
from typing import List, Optional, Sequence

import torch


OUT = {'type': 'OutputDistillLoss', 'name': 'out', 'loss_weight': 0.2}
LC = {'type': 'DUKDConsistencyLoss', 'name': 'lc', 'source': 'zoom_in', 'prob': 0.3, 'loss_weight': 0.2}
LC_LR = {'type': 'DUKDConsistencyLoss', 'name': 'lc', 'source': 'lr', 'prob': 0.3, 'loss_weight': 0.2}
ZI = {'type': 'DUKDZoomInLoss', 'name': 'zi', 'loss_weight': 0.2}
ZO = [{'type': 'DUKDZoomOutLoss', 'name': 'zo', 'loss_weight': 0.2},
      {'type': 'DUKDZoomOutReconLoss', 'name': 'zo_rec', 'loss_weight': 1.0}]
VARIANTS = {
    'student alone': None,
    'out': [OUT],
    'out + lc': [OUT, LC],
    'out + zo + zo_rec': [OUT] + ZO,
    'DUKD (out+lc+zo+zo_rec)': [OUT, LC] + ZO,
    'out + zi + zo + zo_rec': [OUT, ZI] + ZO,
    'out + lc on LR + zo + zo_rec': [OUT, LC_LR] + ZO,
}


def variant_opt(base: dict, terms: Optional[List[dict]], root: str) -> dict:
    opt = copy.deepcopy(base)
    paths = {k: os.path.join(root, k) for k in ('models', 'training_states', 'log', 'visualization')}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    opt['path'].update(experiments_root=root, **paths)
    if terms is None:
        opt['model_type'] = 'SRModel'
        for key in ('network_t', 'distill'):
            opt.pop(key, None)
        opt['train'].pop('distill_opts', None)
    else:
        opt['train']['distill_opts'] = copy.deepcopy(terms)
    return opt


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description='DUKD step cost vs student-alone step')
    p.add_argument('--opt', default='options/dukd.yml')
    p.add_argument('--teacher', default='../shared/pretrained/IMDN_x4.pth',
                   help='plain state_dict (param_key_t ~); "embedded" keeps the option file\'s teacher')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--lq', type=int, default=24, help='LR patch size')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--rounds', type=int, default=30, help='timed iterations per variant')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger
    from sr_kd.options import load_yaml
    get_root_logger().setLevel('WARNING')
    base = load_yaml(args.opt)
    base.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=torch.cuda.device_count(), auto_resume=False)
    if args.teacher != 'embedded':
        base['path'].update(pretrain_network_t=args.teacher, param_key_t=None)
    base['datasets']['train'].update(batch_size_per_gpu=args.batch, gt_size=args.lq * base['scale'])
    tmp = tempfile.mkdtemp(prefix='bench_dukd_')
    models = {}
    for name, terms in VARIANTS.items():
        torch.manual_seed(0)
        models[name] = build_model(variant_opt(base, terms, os.path.join(tmp, str(len(models)))))
    scale = base['scale']
    g = torch.Generator().manual_seed(0)
    batches = [{'lq': torch.rand(args.batch, 3, args.lq, args.lq, generator=g),
                'gt': torch.rand(args.batch, 3, args.lq * scale, args.lq * scale, generator=g)} for _ in range(4)]
    times = {k: [] for k in models}
    cpu = {k: [] for k in models}
    for m in models.values():  # warm-up
        m.feed_data(batches[0])
        m.optimize_parameters(1)
    names = list(models)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            m = models[name]
            m.feed_data(batches[r % len(batches)])
            t0, c0 = time.perf_counter(), time.process_time()
            m.optimize_parameters(r + 2)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    kd = next(m for m in models.values() if hasattr(m, 'net_t'))
    t_prec = 'bf16' if getattr(kd, 't_dtype', None) is not None else 'fp32'
    device = 'cuda' if torch.cuda.is_available() else f'cpu ({torch.get_num_threads()} thread(s))'
    print(f'device: {device}; batch {args.batch}, LR patch {args.lq}, x{scale}; teacher '
          f'{base["path"]["pretrain_network_t"]} ({t_prec}); {args.rounds} rounds')
    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print(f'{"variant":<30} {"wall ms":>8} {"ratio":>6}   {"CPU ms":>7} {"ratio":>6}   (medians)')
    for k in times:
        print(f'{k:<30} {med[k] * 1000:8.1f} {med[k] / med["student alone"]:5.2f}x   '
              f'{cmed[k] * 1000:7.1f} {cmed[k] / cmed["student alone"]:5.2f}x')


if __name__ == '__main__':
    main()
