"""The distillation zoo side by side, through the real training pipeline (one ``sr_kd/train.py`` run each).

    python -m scripts.zoo_benchmark [--iters 300 --batch 8 --lq 32 --seeds 0 1 --top 3 --share 0.25]
                                    [--only ATLoss RKDLoss] [--work experiments/zoo_benchmark]

Same teacher (official IMDN_x4.pth, 64x6), same student (IMDN 32x4), same data (../shared/train), same
seed, iterations, batch and patch size for the student alone, output distillation, feature statistics
and every zoo term. Weights: before training, each term's weight is set so that the norm of its
gradient on the student is ``share`` times that of the L1 task loss (mean over a few batches at the
common initialisation), so every method gets the same push and none wins by its scale alone.

Per run: PSNR/SSIM (Y, border 4) on Set5 and Set14 x4 (MATLAB LR files) of the final weights. Per
method, in a fresh process that builds the model and trains on fixed random batches of the same shapes
(no dataset, so memory is the model's): the median time of one training step and the peak resident
memory, relative to the student alone measured the same way just before (A/B pairs). The
``top`` best methods are rerun with the other seeds, with the student
alone, for the noise. Writes the measured section of docs/zoo.md and docs/zoo.png; results are kept in
``<work>/results.json``, so an interrupted benchmark resumes where it stopped.
"""
import argparse
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import yaml

from scripts.study_core import REPO, SHARED

if TYPE_CHECKING:
    from basicsr.models.base_model import BaseModel

STUDENT = {'type': 'IMDN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_modules': 4, 'upscale': 4}
TEACHER = {'type': 'IMDN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_modules': 6, 'upscale': 4}


def study_pairs() -> List[List[str]]:
    """The taps of options/imdn_kd.yml (the KD study's and this benchmark's): one place, the option file."""
    from sr_kd.options import load_yaml
    return [list(p) for p in load_yaml(os.path.join(REPO, 'options', 'imdn_kd.yml'))['distill']['pairs']]

# method -> (distillation term with the paper's defaults, family); None: the student alone
METHODS = {
    'student alone': (None, 'baseline'),
    'output': ({'type': 'OutputDistillLoss', 'criterion': 'l1'}, 'baseline'),
    'feature stats': ({'type': 'FeatureStatsLoss', 'stat': 'pow_mean', 'p': 2, 'normalize': True}, 'baseline'),
    'FitNet': ({'type': 'FitNetLoss'}, 'hint_attention'),
    'AT': ({'type': 'ATLoss'}, 'hint_attention'),
    'FT': ({'type': 'FTLoss'}, 'hint_attention'),
    'NST': ({'type': 'NSTLoss'}, 'hint_attention'),
    'AB': ({'type': 'ABLoss'}, 'hint_attention'),
    'OFD': ({'type': 'OFDLoss'}, 'hint_attention'),
    'AFD': ({'type': 'AFDLoss'}, 'hint_attention'),
    'VID': ({'type': 'VIDLoss'}, 'hint_attention'),
    'SP': ({'type': 'SPLoss'}, 'relational'),
    'CC': ({'type': 'CCLoss'}, 'relational'),
    'RKD': ({'type': 'RKDLoss'}, 'relational'),
    'PKT': ({'type': 'PKTLoss'}, 'relational'),
    'IRG': ({'type': 'IRGLoss'}, 'relational'),
    'CRD': ({'type': 'CRDLoss'}, 'relational'),
    'pair-wise': ({'type': 'PairWiseLoss'}, 'spatial'),
    'pair-wise (released)': ({'type': 'PairWiseLoss', 'variant': 'released'}, 'spatial'),
    'holistic': ({'type': 'HolisticLoss', 'dim': 16}, 'spatial'),  # the default width 64 costs ~9.5 student steps per step on the CPU
    'FSP': ({'type': 'FSPLoss'}, 'spatial'),
    'KD-SVD': ({'type': 'KDSVDLoss'}, 'decomposition'),
    'MHGD': ({'type': 'MHGDLoss'}, 'decomposition'),
    'Sobolev': ({'type': 'SobolevLoss'}, 'classification_analogs'),
    'DML': ({'type': 'DMLLoss', 'network_peer': STUDENT}, 'classification_analogs'),
}
BENCHMARKS = {'Set5': 'benchmarks/Set5', 'Set14': 'benchmarks/Set14'}


def train_options(method: str, weight: Optional[float], seed: int, args: argparse.Namespace, lr: float = 5e-4,
                  pixel_weight: float = 1.0) -> dict:
    """A complete option dict for one run (``weight`` of the method's term, None for the student alone)."""
    term = METHODS[method][0]
    opt = {
        'name': f'zoo_{re.sub(r"[^A-Za-z0-9]+", "_", method)}_s{seed}', 'model_type': 'SRKDModel' if term else 'SRModel',
        'scale': 4, 'num_gpu': 'auto', 'manual_seed': seed,
        'datasets': {'train': {'name': 'train291', 'type': 'HROnlyDataset', 'dataroot_gt': args.data,
                               'gt_size': args.lq * 4, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
                               'batch_size_per_gpu': args.batch, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None}},
        'network_g': dict(STUDENT),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': lr, 'weight_decay': 0, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 9], 'gamma': 0.5},
                  'total_iter': args.iters, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': pixel_weight, 'reduction': 'mean'}},
        'logger': {'print_freq': 10, 'save_checkpoint_freq': args.iters, 'use_tb_logger': False},
    }
    if term:
        opt['network_t'] = dict(TEACHER)
        opt['path'].update(pretrain_network_t=args.teacher, param_key_t=None, strict_load_t=True)
        opt['distill'] = {'pairs': study_pairs()}
        opt['train']['distill_opts'] = [{**copy.deepcopy(term), 'name': 'kd', 'loss_weight': weight}]
    return opt


# ----- weight calibration (in process) ----------------------------------------------------------------
def calibration_batches(args: argparse.Namespace, seed: int, n: int) -> List[dict]:
    ds_opt = train_options('student alone', None, seed, args)['datasets']['train']
    return training_batches(ds_opt, 4, seed, n)


def training_batches(ds_opt: dict, scale: int, seed: int, n: int) -> List[dict]:
    """``n`` batches drawn (seeded) from a training dataset's options, the same on every call."""
    import random

    import torch
    from sr_kd.data.hr_dataset import HROnlyDataset

    ds = HROnlyDataset({**ds_opt, 'phase': 'train', 'scale': scale})
    random.seed(seed)
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        items = [ds[int(i)] for i in torch.randint(len(ds), (ds_opt['batch_size_per_gpu'],), generator=g)]
        batches.append({k: torch.stack([it[k] for it in items]) for k in ('lq', 'gt')})
    return batches


def build_model_in_process(opt: dict) -> 'BaseModel':
    """The model sr_kd/train.py would build of ``opt`` (sr_kd.in_process), its experiment in a temporary
    folder; no data loader (the probes feed their own batches)."""
    from sr_kd.atomic import atomic_write_text
    from sr_kd.in_process import build_training

    tmp = tempfile.mkdtemp(prefix='zoo_probe_')
    path = os.path.join(tmp, 'options.yml')
    atomic_write_text(path, yaml.safe_dump(json.loads(json.dumps(opt)), sort_keys=False))  # plain dicts
    return build_training(path, tmp, loader=False)[0]


def student_gradient_norms(opt: dict, batches: List[dict]) -> List[float]:
    """Norm of the student's gradient of the whole loss, per batch, at the initial weights (use lr 0),
    after a term's own first stage where it has one (MHGD's head trains for ``warmup_iters`` steps on
    these batches while its loss weighs 0; the student stays at lr 0), so the weight is set for the term
    as it acts on the student."""
    model = build_model_in_process(opt)
    terms = model.get_bare_model(model.distill).terms if hasattr(model, 'distill') else []
    warm = max((t.warmup_iters for t in terms), default=0)
    for i in range(warm):
        model.feed_data(batches[i % len(batches)])
        model.optimize_parameters(i + 1)
    return gradient_norms(model, batches, warm + 1)


def gradient_norms(model: 'BaseModel', batches: List[dict], current_iter: int = 1) -> List[float]:
    """Norm of the student's gradient of the model's whole loss, per batch (an optimizer at lr 0 keeps the
    weights where they are)."""
    import torch

    norms = []
    for b in batches:
        model.feed_data(b)
        model.optimize_parameters(current_iter)
        norms.append(float(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.net_g.parameters()
                                          if p.grad is not None))))
    return norms


def step_probe(method: str, weight: Optional[float], seed: int, args: argparse.Namespace) -> None:
    """Child-process side: build the model, time ``timed_steps`` training steps after two warm-up steps
    on fixed random batches; print the median step time and the process's peak resident memory."""
    import resource

    import torch

    g = torch.Generator().manual_seed(seed)
    batches = [{'lq': torch.rand(args.batch, 3, args.lq, args.lq, generator=g),
                'gt': torch.rand(args.batch, 3, args.lq * 4, args.lq * 4, generator=g)} for _ in range(2)]
    model = build_model_in_process(train_options(method, weight, seed, args))
    times = []
    for i in range(args.timed_steps + 2):
        start = time.perf_counter()
        model.feed_data(batches[i % 2])
        model.optimize_parameters(i + 1)
        times.append(time.perf_counter() - start)
    print(json.dumps({'sec_per_iter': statistics.median(times[2:]),
                      'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure_step(method: str, weight: Optional[float], seed: int, args: argparse.Namespace) -> dict:
    """Run ``step_probe`` in a fresh process (its peak memory is then this method's alone)."""
    cmd = [sys.executable, '-m', 'scripts.zoo_benchmark', '--step-probe', method, '--seeds', str(seed), '--batch', str(args.batch), '--lq', str(args.lq), '--threads', str(args.threads),
           '--timed-steps', str(args.timed_steps), '--data', args.data, '--teacher', args.teacher]
    if weight is not None:
        cmd += ['--weight', repr(weight)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        return {'status': 'failed: ' + (proc.stderr.strip().splitlines() or ['?'])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def probe(method: str, args: argparse.Namespace, seed: int, batches: List[dict], pixel_norm: float) -> dict:
    """The term's weight (gradient share) and the time of one training step with it."""
    from sr_kd.errors import SRKDError

    try:
        norm = statistics.mean(student_gradient_norms(
            train_options(method, 1.0, seed, args, lr=0.0, pixel_weight=0.0), batches))
    except SRKDError as e:
        return {'status': f'refused: {e}'}
    weight = float(f'{args.share * pixel_norm / norm:.3g}') if norm > 0 else 1.0
    return {'weight': weight, 'grad_ratio': norm / pixel_norm}


# ----- one training run (subprocess) ------------------------------------------------------------------
def evaluate_checkpoint(path: str) -> Dict[str, dict]:
    import torch
    from basicsr.archs import build_network
    from sr_kd.checkpoint import extract_state_dict, load_checkpoint
    from sr_kd.evaluate import evaluate

    net = build_network(dict(STUDENT))
    net.load_state_dict(extract_state_dict(load_checkpoint(path), 'params'))
    net.eval()
    out = {}
    with torch.no_grad():
        for name, folder in BENCHMARKS.items():
            hr, lr = os.path.join(SHARED, folder, 'HR'), os.path.join(SHARED, folder, 'LR_bicubic', 'X4')
            out[name] = evaluate(net, STUDENT, hr, 4, lr_dir=lr, progress=False)['mean']
    return out


def train_run(method: str, weight: Optional[float], seed: int, args: argparse.Namespace) -> dict:
    opt = train_options(method, weight, seed, args)
    os.makedirs(os.path.join(args.work, 'options'), exist_ok=True)
    opt_path = os.path.join(args.work, 'options', f'{opt["name"]}.yml')
    with open(opt_path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    env = dict(os.environ, SR_KD_ROOT=args.work, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    exp = os.path.join(args.work, 'experiments', opt['name'])
    start = time.time()
    with open(os.path.join(args.work, f'{opt["name"]}.out'), 'w') as out:
        code = subprocess.run([sys.executable, 'sr_kd/train.py', '-opt', opt_path], cwd=REPO, env=env,
                              stdout=out, stderr=subprocess.STDOUT).returncode
    row = {'method': method, 'seed': seed, 'weight': weight, 'wall_s': round(time.time() - start, 1)}
    if code:
        with open(os.path.join(args.work, f'{opt["name"]}.out')) as f:
            row['status'] = 'failed: ' + (f.read().strip().splitlines() or ['no output'])[-1][:300]
        return row
    row.update(evaluate_checkpoint(os.path.join(exp, 'models', 'net_g_latest.pth')))
    row['status'] = 'ok'
    return row


# ----- report -----------------------------------------------------------------------------------------
def fmt(x: Optional[float], nd: int = 2) -> str:
    return f'{x:+.{nd}f}' if x is not None else '-'


def summarise(results: dict, seeds: Sequence[int]) -> Tuple[List[dict], Optional[dict]]:
    """Per method: seed-0 row, deltas to the student alone (same seed), and the multi-seed statistics."""
    runs = {(r['method'], r['seed']): r for r in results['runs'].values() if r.get('status') == 'ok'}
    s0 = seeds[0]
    base = runs.get(('student alone', s0))
    table = []
    for method in METHODS:
        r = runs.get((method, s0))
        row = {'method': method, 'run': r, 'probe': results['probe'].get(method, {}),
               'step': results['steps'].get(method, {})}
        if r and base and method != 'student alone':
            row['d5'] = r['Set5']['psnr'] - base['Set5']['psnr']
            row['d14'] = r['Set14']['psnr'] - base['Set14']['psnr']
        if 'time_ratio' in row['step']:
            row['time'], row['memory'] = row['step']['time_ratio'], row['step']['memory_ratio']
        deltas = [(runs[(method, s)]['Set5']['psnr'] - runs[('student alone', s)]['Set5']['psnr'],
                   runs[(method, s)]['Set14']['psnr'] - runs[('student alone', s)]['Set14']['psnr'])
                  for s in seeds if (method, s) in runs and ('student alone', s) in runs]
        row['seed_deltas'] = deltas
        table.append(row)
    return table, base


def write_chart(table: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from sr_kd.atomic import atomic_savefig

    rows = [r for r in table if 'd5' in r and r['method'] != 'student alone']
    rows.sort(key=lambda r: r['d5'] + r['d14'])
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r['d5'] for r in rows], height=0.4, label='Set5 x4')
    ax.barh([i - 0.2 for i in y], [r['d14'] for r in rows], height=0.4, label='Set14 x4')
    for i, r in enumerate(rows):
        for d5, d14 in r['seed_deltas'][1:]:
            ax.plot([d5], [i + 0.2], 'k.', ms=4)
            ax.plot([d14], [i - 0.2], 'k.', ms=4)
    ax.axvline(0, color='k', lw=0.8)
    ax.set_yticks(list(y))
    ax.set_yticklabels([r['method'] for r in rows])
    ax.set_xlabel('PSNR difference to the student alone (dB, Y); dots: other seeds')
    ax.legend(loc='lower right')
    atomic_savefig(fig, path, dpi=120)


def student_line(base: Optional[dict], step: dict) -> str:
    if not base:
        return 'Student alone: not run.'
    line = (f'Student alone: Set5 {base["Set5"]["psnr"]:.2f} dB / {base["Set5"]["ssim"]:.4f}, Set14 '
            f'{base["Set14"]["psnr"]:.2f} dB / {base["Set14"]["ssim"]:.4f}')
    pairs = [p for p in step.get('pairs', []) if 'sec_per_iter' in p]
    if pairs:
        t = [p['sec_per_iter'] for p in pairs]
        m = [p['peak_rss_mb'] for p in pairs]
        line += (f'; one training step {statistics.median(t):.3f} s (range over its {len(t)} measurements '
                 f'{min(t):.3f} to {max(t):.3f} s: the machine is shared), peak memory {statistics.median(m):.0f} MB')
    return line + '.'


def write_report(results: dict, args: argparse.Namespace) -> None:
    table, base = summarise(results, args.seeds)
    if args.section != 'zoo-benchmark':  # a partial rerun: only the methods it ran
        table = [r for r in table if r['run'] or r['probe'].get('status')]
    chart = 'zoo.png' if args.section == 'zoo-benchmark' else f'{args.section}.png'
    write_chart(table, os.path.join(REPO, 'docs', chart))
    meta = results['meta']
    lines = [
        f'Budget: {meta["iters"]} iterations, batch {meta["batch"]}, LR patch {meta["lq"]} (HR {meta["lq"] * 4}), '
        f'Adam lr 5e-4, seed {args.seeds[0]} for every method; {meta["device"]}, {meta["threads"]} thread(s), '
        f'run {meta["date"]}. Taps {", ".join(f"{s}->{t}" for s, t in study_pairs())}. Weights: gradient share '
        f'{meta["share"]} of the L1 task loss at initialisation (see the script). PSNR/SSIM on Y, border 4, '
        f'of the final weights. Time: median of {meta["timed_steps"]} training steps (forward, losses, backward, '
        'optimizer; teacher forward included, data loading excluded) on fixed batches of the same shapes; '
        'memory: peak resident memory of a fresh process that builds the model and runs those steps; both '
        'relative to the student alone measured just before (A/B pairs).',
        '',
        student_line(base, results['steps'].get('student alone', {})),
        '',
        '| method | weight | Set5 PSNR / SSIM | vs student | Set14 PSNR / SSIM | vs student | time/step | memory |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for row in table:
        r = row['run']
        if r is None:
            status = row['probe'].get('status') or 'not run'
            lines.append(f'| {row["method"]} | - | {status} | | | | | |')
            continue
        w = '-' if r['weight'] is None else f'{r["weight"]:.3g}'
        lines.append(f'| {row["method"]} | {w} | {r["Set5"]["psnr"]:.2f} / {r["Set5"]["ssim"]:.4f} | '
                     f'{fmt(row.get("d5"))} | {r["Set14"]["psnr"]:.2f} / {r["Set14"]["ssim"]:.4f} | '
                     f'{fmt(row.get("d14"))} | {row.get("time", 1.0):.2f}x | {row.get("memory", 1.0):.2f}x |')
    multi = [r for r in table if len(r['seed_deltas']) > 1 and r['method'] != 'student alone']
    if multi:
        runs = {(r['method'], r['seed']): r for r in results['runs'].values() if r.get('status') == 'ok'}
        alone = [runs[('student alone', s)] for s in args.seeds if ('student alone', s) in runs]
        lines += ['', f'Noise: the student alone over seeds {", ".join(map(str, args.seeds))}: Set5 '
                  + ', '.join(f'{r["Set5"]["psnr"]:.2f}' for r in alone) + ' dB; Set14 '
                  + ', '.join(f'{r["Set14"]["psnr"]:.2f}' for r in alone) + ' dB. The best methods of seed '
                  f'{args.seeds[0]}, rerun (difference to the student alone of the same seed, mean +- '
                  'standard deviation over seeds):', '',
                  '| method | seeds | Set5 vs student | Set14 vs student |', '| --- | --- | --- | --- |']
        for r in multi:
            d5 = [d[0] for d in r['seed_deltas']]
            d14 = [d[1] for d in r['seed_deltas']]
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
            lines.append(f'| {r["method"]} | {len(d5)} | {fmt(statistics.mean(d5))} +- {sd(d5):.2f} | '
                         f'{fmt(statistics.mean(d14))} +- {sd(d14):.2f} |')
    lines += ['', f'![PSNR difference to the student alone]({chart})']
    write_section(args.section, lines)


def write_section(section: str, lines: List[str]) -> None:
    """Replace the generated section ``section`` of docs/zoo.md (between its start and end markers)."""
    doc = os.path.join(REPO, 'docs', 'zoo.md')
    with open(doc) as f:
        text = f.read()
    start, end = f'<!-- {section}:start -->', f'<!-- {section}:end -->'
    head, rest = text.split(start)
    _, tail = rest.split(end)
    from sr_kd.atomic import atomic_write_text
    atomic_write_text(doc, head + start + '\n' + '\n'.join(lines) + '\n' + end + tail)


# ----- main ---------------------------------------------------------------------------------------------
def save(results: dict, path: str) -> None:
    from sr_kd.atomic import atomic_write_text
    atomic_write_text(path, json.dumps(results, indent=1))


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description='distillation zoo comparison')
    p.add_argument('--iters', type=int, default=300)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--lq', type=int, default=32, help='LR patch size')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='first: every method; others: the top ones')
    p.add_argument('--top', type=int, default=3, help='methods rerun with the other seeds')
    p.add_argument('--share', type=float, default=0.25, help="term's gradient norm / task loss's at initialisation")
    p.add_argument('--calibration-batches', type=int, default=3)
    p.add_argument('--timed-steps', type=int, default=8)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--only', nargs='+', help='method names (as in the table) to run')
    p.add_argument('--work', default=os.path.join(REPO, 'experiments', 'zoo_benchmark'))
    p.add_argument('--data', default='../shared/train')
    p.add_argument('--teacher', default='../shared/pretrained/IMDN_x4.pth')
    p.add_argument('--report-only', action='store_true', help='rewrite docs/zoo.md and docs/zoo.png from results.json')
    p.add_argument('--section', default='zoo-benchmark',
                   help='marker name of the docs/zoo.md section to write (and docs/<section>.png unless the '
                        'default): a partial rerun (--only) writes its own section instead of the full table')
    p.add_argument('--step-probe', help=argparse.SUPPRESS)  # internal: time one method's step in this process
    p.add_argument('--weight', type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)

    import torch
    torch.set_num_threads(args.threads)
    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from basicsr.utils import get_root_logger
    get_root_logger().setLevel('WARNING')

    if args.step_probe:
        os.chdir(REPO)
        step_probe(args.step_probe, args.weight, args.seeds[0], args)
        return
    res_path = os.path.join(args.work, 'results.json')
    setup = {'iters': args.iters, 'batch': args.batch, 'lq': args.lq, 'share': args.share,
             'timed_steps': args.timed_steps, 'threads': args.threads,
             'device': 'GPU' if torch.cuda.is_available() else 'CPU'}
    results = {'meta': {**setup, 'date': time.strftime('%Y-%m-%d')}, 'probe': {}, 'steps': {}, 'runs': {}}
    if os.path.isfile(res_path):
        with open(res_path) as f:
            old = json.load(f)
        if all(old['meta'].get(k) == v for k, v in setup.items()):
            results = {**results, **old}
    if not args.report_only:
        methods = [m for m in METHODS if not args.only or m in args.only or m == 'student alone']
        os.chdir(REPO)  # the option files' relative paths (../shared/...) are relative to the repository
        todo = [m for m in methods if m not in results['probe']]
        if todo:
            batches = calibration_batches(args, args.seeds[0], args.calibration_batches)
            pix = statistics.mean(student_gradient_norms(
                train_options('student alone', None, args.seeds[0], args, lr=0.0), batches))
            for m in todo:
                results['probe'][m] = probe(m, args, args.seeds[0], batches, pix) if METHODS[m][0] else {}
                print(f'probed {m}: {results["probe"][m]}', flush=True)
                save(results, res_path)
        steps = [m for m in methods if m != 'student alone' and m not in results['steps']
                 and 'weight' in results['probe'].get(m, {})]
        for m in steps:  # A/B pairs: the student alone right before each method, so drift hits both
            alone = measure_step('student alone', None, args.seeds[0], args)
            row = measure_step(m, results['probe'][m]['weight'], args.seeds[0], args)
            if 'sec_per_iter' in row and 'sec_per_iter' in alone:
                row.update(time_ratio=row['sec_per_iter'] / alone['sec_per_iter'],
                           memory_ratio=row['peak_rss_mb'] / alone['peak_rss_mb'])
            results['steps'].setdefault('student alone', {'pairs': []})['pairs'].append(alone)
            results['steps'][m] = row
            print(f'step {m}: {row}', flush=True)
            save(results, res_path)

        def run(method, seed):
            key = f'{method}|{seed}'
            if results['runs'].get(key, {}).get('status') == 'ok':
                return
            weight = results['probe'].get(method, {}).get('weight')
            if METHODS[method][0] and weight is None:
                return
            row = train_run(method, weight, seed, args)
            results['runs'][key] = row
            save(results, res_path)
            print(json.dumps(row), flush=True)

        for m in methods:
            run(m, args.seeds[0])
        table, _ = summarise(results, args.seeds[:1])
        ranked = sorted((r for r in table if 'd5' in r and r['method'] != 'student alone'),
                        key=lambda r: -(r['d5'] + r['d14']))
        for seed in args.seeds[1:]:
            run('student alone', seed)
            for r in ranked[:args.top]:
                run(r['method'], seed)
    write_report(results, args)


if __name__ == '__main__':
    main()
