"""Which recipe makes the best fast student of a real community model? ``sr-kd distill`` itself, run per
recipe at equal wall time on ../shared/train (the user's images, 10% held out) with
../shared/pretrained/realesr-animevideov3.pth as the teacher; figures for docs/distill.md.

    python -m scripts.distill_study --runs output-online:30,output-offline-crop48:30     # run or continue
    python -m scripts.distill_study --report                                            # tables + curves

Runs live outside the repository (``--root``, default ~/sr_kd_study/distill): a run whose folder holds no
summary.json is continued with ``sr-kd distill --resume``, a finished one is skipped. Each run is one
process with one thread, ``--jobs`` at a time; offline runs share one teacher cache under the root.
``--report`` copies each finished run's summary and validation curve (a few KB) into docs/distill/runs/
and draws docs/distill/curves.png. ``--save-progress`` keeps what an unfinished run needs to resume on
another machine (its newest training state and student, logs, options: about 1.5 MB) in
docs/distill/progress/; a run whose folder is missing starts from there (its teacher cache is rebuilt).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import List, Optional, Tuple

from scripts import study_core
from scripts.study_core import REPO, SHARED, STUDY_ROOT, keep_progress, newest_state
from sr_kd.atomic import atomic_savefig, atomic_write_text

TEACHER = os.path.join(SHARED, 'pretrained', 'realesr-animevideov3.pth')
IMAGES = os.path.join(SHARED, 'train')
DOCS = os.path.join(REPO, 'docs', 'distill')
SRKD = os.path.join(os.path.dirname(sys.executable), 'sr-kd')


def run_name(recipe: str, minutes: float, student: str, seed: int) -> str:
    return f'{recipe}_{minutes:g}min_{student}_s{seed}'


def parse_name(name: str) -> Optional[Tuple[str, float, str, int]]:
    """(recipe, minutes, student, seed) of a name ``run_name`` wrote; None for any other run's name."""
    m = re.match(r'(.+)_([\d.]+)min_(.+)_s(\d+)$', name)
    return (m[1], float(m[2]), m[3], int(m[4])) if m else None


def parse_runs(text: str, student: str, seed: int) -> List[Tuple[str, str, float, str, int]]:
    """'recipe:minutes[:student],...' -> [(name, recipe, minutes, student, seed)]."""
    runs = []
    for item in filter(None, text.split(',')):
        parts = item.split(':')
        recipe, minutes = parts[0], float(parts[1])
        who = parts[2] if len(parts) > 2 else student
        runs.append((run_name(recipe, minutes, who, seed), recipe, minutes, who, seed))
    return runs


def command(root: str, name: str, recipe: str, minutes: float, student: str, seed: int) -> List[str]:
    out = os.path.join(root, name)
    if os.path.isfile(os.path.join(out, 'options.yml')):
        return [SRKD, 'distill', TEACHER, '-o', out, '--resume', '--threads', '1', '--no-onnx']
    return [SRKD, 'distill', TEACHER, '--images', IMAGES, '-o', out, '--recipe', recipe, '--minutes', str(minutes),
            '--student', student, '--seed', str(seed), '--threads', '1', '--no-onnx',
            '--cache-dir', os.path.join(root, 'teacher_cache')]


PROGRESS = os.path.join(DOCS, 'progress')
STUDENT = 'compact-32x8'  # the study's student unless a run names another


def save_progress(root: str) -> None:
    """Keep what each unfinished run under ``root`` needs to resume (newest state only) in PROGRESS; not
    init_from_teacher.pth: it is a cut of the teacher's own weights, which stay out of the repository."""
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        out = os.path.join(root, name)
        if os.path.isdir(out) and not os.path.isfile(os.path.join(out, 'summary.json')):
            keep_progress(out, os.path.join(out, 'experiments', 'student'), os.path.join(PROGRESS, name),
                          extra=('options.yml', 'distill.json'))


def restore_progress(root: str, name: str) -> None:
    """A run whose folder is missing (another machine) continues from its kept progress; its start (the
    cut of the teacher, not kept) becomes its newest weights, which resume replaces anyway."""
    out = os.path.join(root, name)
    if not study_core.restore_progress(os.path.join(PROGRESS, name), out):
        return
    opt_file = os.path.join(out, 'options.yml')
    with open(opt_file) as f:
        text = f.read()
    exp = os.path.join(out, 'experiments', 'student')
    newest = os.path.join(exp, 'models', f'net_g_{newest_state(exp)}.pth')
    text = re.sub(r'(pretrain_network_g: ).*init_from_teacher\.pth', lambda m: m.group(1) + newest, text)
    atomic_write_text(opt_file, text)


def run_all(root: str, runs: List[Tuple[str, str, float, str, int]], jobs: int) -> None:
    todo = [r for r in runs if not os.path.isfile(os.path.join(root, r[0], 'summary.json'))]
    running = []
    while todo or running:
        while todo and len(running) < jobs:
            run = todo.pop(0)
            os.makedirs(root, exist_ok=True)
            restore_progress(root, run[0])
            log = open(os.path.join(root, f'{run[0]}.out'), 'a')
            print(f'start {run[0]}', flush=True)
            running.append((run, subprocess.Popen(command(root, *run), stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(10)
        for item in list(running):
            run, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f'{run[0]}: exit {proc.returncode}', flush=True)


def report(root: str) -> None:
    """Copy finished runs' results into docs/distill/runs/ and draw the curves of every run there."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sr_kd.report import read_jsonl
    runs_dir = os.path.join(DOCS, 'runs')
    os.makedirs(runs_dir, exist_ok=True)
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        src = os.path.join(root, name)
        for f, dst in (('summary.json', f'{name}.summary.json'),
                       (os.path.join('experiments', 'student', 'val_metrics.jsonl'), f'{name}.val.jsonl')):
            if os.path.isfile(os.path.join(src, f)):
                shutil.copyfile(os.path.join(src, f), os.path.join(runs_dir, dst))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    rows = []
    for f in sorted(os.listdir(runs_dir)):
        if not f.endswith('.val.jsonl'):
            continue
        name = f[:-len('.val.jsonl')]
        curve = [(r['train_cpu_seconds'] / 60, r['student']['psnr']) for r in read_jsonl(os.path.join(runs_dir, f))]
        summary = os.path.join(runs_dir, f'{name}.summary.json')
        done = json.load(open(summary)) if os.path.isfile(summary) else None
        rows.append((name, curve, done))
    # one colour per recipe (the online baseline black), one line style per budget, so 15 runs stay apart
    parsed = {name: parse_name(name) for name, _, _ in rows}
    recipe_of = {name: (done or {}).get('recipe') or (parsed[name] or (name,))[0] for name, _, done in rows}
    recipes = sorted(set(recipe_of.values()) - {'output-online'})
    colours = {r: plt.cm.tab10(i % 10) for i, r in enumerate(recipes)}
    colours['output-online'] = 'black'
    for name, curve, _ in rows:
        minutes = parsed[name][1] if parsed[name] else 60  # a run named by hand: the target run's 60
        style = {30: '-', 60: '--', 120: ':'}.get(minutes, '-')
        marker = 's' if parsed[name] and parsed[name][2] != STUDENT else 'o'  # another student: squares
        ax.plot([c[0] for c in curve], [c[1] for c in curve], marker=marker, ms=3, ls=style,
                color=colours[recipe_of[name]], label=name)
    ax.set_xlabel('training minutes (CPU time of one thread)')
    ax.set_ylabel('PSNR (dB, RGB) to the teacher, held-out images')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=f'solid 30 min, dashed 60, dotted 120; squares: not {STUDENT}', title_fontsize=7)
    atomic_savefig(fig, os.path.join(DOCS, 'curves.png'), dpi=90)
    marks = (5, 10, 15, 20, 25, 50)
    print('| run | ' + ' | '.join(f'{m} min' for m in marks) + ' | best (CPU minutes) | speed-up |')
    print('| --- |' + ' --- |' * (len(marks) + 2))
    for name, curve, done in rows:
        at = [_at(curve, m) for m in marks]
        best = max(curve, key=lambda r: r[1]) if curve else (0, float('nan'))
        speed = f'{done["speed"]["speedup"]:.2f}x' if done else 'running'
        print(f'| {name} | ' + ' | '.join(f'{v:.3f}' if v is not None else '' for v in at)
              + f' | {best[1]:.3f} ({best[0]:.1f}) | {speed} |')


def _at(curve, minute):
    """PSNR at ``minute`` of a curve [(minutes, psnr)], linear between validations; None outside it."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= minute <= x1:
            return y0 + (y1 - y0) * (minute - x0) / (x1 - x0)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--runs', default='', help='recipe:minutes[:student],... (see sr_kd/distill/recipes.py)')
    p.add_argument('--student', default=STUDENT)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--root', default=os.path.join(STUDY_ROOT, 'distill'))
    p.add_argument('--report', action='store_true')
    p.add_argument('--save-progress', action='store_true', help='keep unfinished runs in docs/distill/progress')
    args = p.parse_args()
    if args.report:
        report(args.root)
        return
    if args.save_progress:
        save_progress(args.root)
        return
    run_all(args.root, parse_runs(args.runs, args.student, args.seed), args.jobs)


if __name__ == '__main__':
    main()
