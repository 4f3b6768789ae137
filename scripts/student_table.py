"""The student comparison of docs/students.md: SPAN and IMDN 32x4, each distilled from the official IMDN_x4.pth
(loaded through ``network_t: {type: auto}``) and trained alone, at the same budget, data and seed.

Trains the four option files of options/students/ (``--iters`` overrides their total_iter), then measures
for each student and for the teacher: parameters used by an inference forward (SPAN's training branches
folded), CPU milliseconds per 256x256 LR input (NTIRE efficient-SR protocol: fp32, batch 1, the median of
``--runs`` forwards after warm-up, in this process, one model after the other), and Set5/Set14 PSNR/SSIM
(Y, border 4, LR from the benchmark's files). Prints a markdown table with the machine and the budget.

    .venv/bin/python -m scripts.student_table --iters 5000         # trains (or continues) the four, then measures
    .venv/bin/python -m scripts.student_table --iters 5000 --skip-train   # re-measure them only

Needs ../shared (train/, benchmarks/, pretrained/IMDN_x4.pth).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Dict

import yaml

from scripts.kd_study import iteration_seconds, schedule
from scripts.study_core import REPO, SHARED, machine

if TYPE_CHECKING:
    import torch

CONFIGS = ['span_kd', 'span_alone', 'imdn32x4_kd', 'imdn32x4_alone']


def experiment(name: str, iters: int, root: str) -> str:
    return os.path.join(root, 'experiments', f'students_{name}_{iters}it')


def train(name: str, iters: int, root: str, threads: int) -> None:
    """Train one student (or continue it from its last checkpoint, so the table survives a stopped session);
    the schedule is the KD study's: lr halved at 1/2, 3/4 and 9/10 of the iterations."""
    folder = experiment(name, iters, root)
    if os.path.isfile(os.path.join(folder, 'training_states', f'{iters}.state')):
        return  # finished earlier
    with open(os.path.join(REPO, 'options', 'students', f'{name}.yml')) as f:
        opt = yaml.safe_load(f)
    opt['name'] = os.path.basename(folder)
    opt['train']['total_iter'] = iters
    opt['train']['scheduler'] = schedule(iters)
    opt['datasets']['train']['num_worker_per_gpu'] = 0  # one thread per run, as the KD study
    opt['val']['val_freq'] = iters
    opt['logger'].update(save_checkpoint_freq=min(1000, iters), print_freq=min(100, iters))
    with tempfile.NamedTemporaryFile('w', suffix='.yml', dir=root, delete=False) as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    env = dict(os.environ, SR_KD_ROOT=root, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, 'sr_kd/train.py', '-opt', f.name]
    if os.path.isdir(os.path.join(folder, 'training_states')):
        cmd.append('--auto_resume')
    try:
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
    finally:
        os.remove(f.name)


def cpu_ms(model: 'torch.nn.Module', runs: int) -> float:
    import torch
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        for i in range(runs + 2):
            t0 = time.perf_counter()
            model(x)
            if i >= 2:
                times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def measure(ckpt: str, runs: int) -> Dict[str, Any]:
    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from sr_kd.archs.loading import load_model
    from sr_kd.archs.loading import inference_parameters
    from sr_kd.evaluate import evaluate
    model, info = load_model(ckpt)
    row = {'label': info.label, 'params': inference_parameters(model, info), 'ms': cpu_ms(model, runs)}
    for bench in ('Set5', 'Set14'):
        folder = os.path.join(SHARED, 'benchmarks', bench)
        res = evaluate(model, info, os.path.join(folder, 'HR'), 4, os.path.join(folder, 'LR_bicubic', 'X4'),
                       progress=False)['mean']
        row[bench] = f'{res["psnr"]:.2f} / {res["ssim"]:.4f}'
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=300, help='training iterations of each student')
    p.add_argument('--runs', type=int, default=10, help='timed forwards per model')
    p.add_argument('--root', default=REPO, help='where experiments/ goes')
    p.add_argument('--skip-train', action='store_true')
    p.add_argument('--only', help='comma-separated subset of ' + ', '.join(CONFIGS) + ' (e.g. to train two at once '
                   'in two processes; a later run without it measures all four)')
    p.add_argument('--threads', type=int, help='torch threads for the timing')
    p.add_argument('--train-threads', type=int, default=1, help='threads of each training run')
    args = p.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [('teacher (official IMDN_x4.pth)', os.path.join(SHARED, 'pretrained', 'IMDN_x4.pth'), None)]
    for name in args.only.split(',') if args.only else CONFIGS:
        if name not in CONFIGS:
            sys.exit(f'student_table: error: --only names one of {", ".join(CONFIGS)}, not {name!r}')
        if not args.skip_train:
            train(name, args.iters, args.root, args.train_threads)
        folder = experiment(name, args.iters, args.root)
        seconds = iteration_seconds(folder)
        rows.append((name, os.path.join(folder, 'models', 'net_g_latest.pth'), seconds and seconds * args.iters))
    load = os.getloadavg()[0]
    print(f'\n{machine()}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, load average {load:.1f}; {args.iters} iterations each, batch 8, '
          f'HR crops 96, seed 0, T91+BSD200, lr 5e-4 halved at 1/2, 3/4, 9/10; '
          f'training {args.train_threads} thread(s) a run\n')
    print('| model | parameters (inference) | CPU ms per 256x256 (median) | Set5 PSNR / SSIM | Set14 PSNR / SSIM '
          '| training s (median step x iterations) |')
    print('| --- | --- | --- | --- | --- | --- |')
    for name, ckpt, seconds in rows:
        r = measure(ckpt, args.runs)
        print(f'| {name}: {r["label"]} | {r["params"]:,} | {r["ms"]:.0f} | {r["Set5"]} | {r["Set14"]} '
              f'| {seconds:.0f} |' if seconds else
              f'| {name}: {r["label"]} | {r["params"]:,} | {r["ms"]:.0f} | {r["Set5"]} | {r["Set14"]} | |',
              flush=True)


if __name__ == '__main__':
    main()
