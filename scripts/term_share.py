"""How large a distillation term's push on the student is at a checkpoint of a run, against the L1 task loss's.

    python -m scripts.term_share experiments/kd_study_mhgd_s0_20k [--iters 0 20000] [--batches 8]

The zoo's weights make each term's gradient on the student 0.25 times the task loss's at initialisation
(scripts/zoo_benchmark.py). Whether that still holds after 20,000 iterations decides whether a term guides
the student or drowns the task (docs/zoo.md, issue 13's runs at the KD study's budget). Per checkpoint:
the norm of the student's gradient of the distillation terms alone (pixel loss weight 0) and of the L1 task
loss alone, mean over the same batches of the run's own training data; the ratio is the term's share.
Iteration 0 is the run's initialisation (same seed), so the first line checks the calibration.
"""
import argparse
import copy
import os
import statistics
from typing import List, Optional, Sequence, Tuple


def gradient_norm(opt: dict, run_dir: str, it: int, batches: List[dict]) -> float:
    """Mean norm of the student's gradient over ``batches`` at iteration ``it`` of the run (lr 0: no step)."""
    from scripts.zoo_benchmark import build_model_in_process, gradient_norms

    model = build_model_in_process(opt)
    if it:
        from sr_kd.checkpoint import load_checkpoint
        state = load_checkpoint(os.path.join(run_dir, 'training_states', f'{it}.state'))  # weights only
        model.load_network(model.net_g, os.path.join(run_dir, 'models', f'net_g_{it}.pth'), strict=True)
        if hasattr(model, 'distill') and 'distill' in state:
            bare = model.get_bare_model(model.distill)
            bare.load_state_dict(state['distill'])
            bare.load_own_state(state.get('distill_own', {}))
    return statistics.mean(gradient_norms(model, batches, it + 1))


def shares(run_dir: str, iters: Sequence[int], n_batches: int) -> List[Tuple[int, float, float]]:
    """[(iteration, terms' gradient norm, task loss's gradient norm)] of the run at each of ``iters``."""
    from sr_kd.options import load_yaml

    name = os.path.basename(os.path.normpath(run_dir))
    have = {int(f.split('.')[0]) for f in os.listdir(os.path.join(run_dir, 'training_states'))
            if f.endswith('.state')} if os.path.isdir(os.path.join(run_dir, 'training_states')) else set()
    missing = [it for it in iters if it and (it not in have or not os.path.isfile(
        os.path.join(run_dir, 'models', f'net_g_{it}.pth')))]
    if missing:
        raise SystemExit(f'{run_dir} has no checkpoint at iteration {", ".join(map(str, missing))} '
                         f'(it has: {", ".join(map(str, sorted(have))) or "none"})')
    base = load_yaml(os.path.join(run_dir, f'{name}.yml'))  # BasicSR's copy of the run's options
    base['train']['optim_g']['lr'] = 0.0
    base['distill']['teacher'] = 'online'  # the offline cache holds the same targets (tests/test_teacher_cache.py)
    base['distill']['fade'] = None  # the terms at their own weight (the study's zoo runs have no fade)
    task = copy.deepcopy(base)
    task['model_type'] = 'SRModel'
    for key in ('network_t', 'distill'):
        task.pop(key)
    task['train'].pop('distill_opts')
    term = copy.deepcopy(base)
    term['train']['pixel_opt']['loss_weight'] = 0.0
    from scripts.zoo_benchmark import training_batches
    batches = training_batches(base['datasets']['train'], base['scale'], base['manual_seed'], n_batches)
    return [(it, gradient_norm(term, run_dir, it, batches), gradient_norm(task, run_dir, it, batches))
            for it in iters]


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run', help='the run folder (experiments/<name>), with its option copy and checkpoints')
    p.add_argument('--iters', type=int, nargs='+', default=[0], help='checkpoints to measure (0: initialisation)')
    p.add_argument('--batches', type=int, default=8)
    args = p.parse_args(argv)

    import torch

    import sr_kd
    sr_kd.load()  # compat + registries before basicsr

    torch.set_num_threads(1)
    name = os.path.basename(os.path.normpath(args.run))
    print(f'{name}: student gradient norm of the distillation terms / of the L1 task loss, {args.batches} batches')
    for it, t, g in shares(args.run, args.iters, args.batches):
        print(f'iteration {it:>6}: terms {t:.4g}, task {g:.4g}, share {t / g:.3f}')


if __name__ == '__main__':
    main()
