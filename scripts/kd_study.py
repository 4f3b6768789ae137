"""Does distillation pay? Every recipe trains the same student (IMDN 32x4, x4) with the same data, schedule
and budget, taught by the official IMDN_x4 teacher; results go to docs/kd_study/ and docs/kd_study.md.

    python -m scripts.kd_study                      # run (or continue) the plan, two runs at a time
    python -m scripts.kd_study --runs student:1,dukd:0 --jobs 1
    python -m scripts.kd_study --report             # tables and plots from what has finished

Recipes are chosen on a validation split of the training images (every 10th file of ../shared/train,
left out of training); Set5/Set14 (and B100/Urban100/Manga109 under datasets/benchmarks/ when present)
are evaluated once, on the final weights. Resumable: each finished run appends one line to
docs/kd_study/results.jsonl and is skipped afterwards; an unfinished run continues from its last
checkpoint (``--auto_resume``), so the study survives a kill and spans sessions. Each run is one process
with one thread (``--threads``), ``--jobs`` at a time. Runs live outside the repository (``--root``, default
~/sr_kd_study/kd: experiments/ and logs/); every 5 minutes the newest state of each unfinished run is kept
in docs/kd_study/progress/ (what resume needs on another machine, which puts it back from there).
"""
import argparse
import copy
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Set, Tuple

from scripts.kd_names import parse_run_name, run_name
from scripts.study_core import REPO, SHARED, STUDY_ROOT, keep_progress, machine, restore_progress

OUT = os.path.join(REPO, 'docs', 'kd_study')
RESULTS = os.path.join(OUT, 'results.jsonl')
# The newest checkpoint of each unfinished run (weights, training state, logs: ~3 MB a run), committed with
# the study so that a run continues in a later session, or on a new clone, instead of starting again.
PROGRESS = os.path.join(OUT, 'progress')
FS = {'type': 'FeatureStatsLoss', 'name': 'fs', 'stat': 'pow_mean', 'p': 2, 'normalize': True, 'loss_weight': 0.1}
OUTPUT = {'type': 'OutputDistillLoss', 'name': 'out', 'criterion': 'l1', 'loss_weight': 0.5}
DUKD_FILE = os.path.join(REPO, 'options', 'dukd.yml')


def _dukd_terms():
    """DUKD's terms as options/dukd.yml lists them (the paper's weights)."""
    from sr_kd.options import load_yaml
    return json.loads(json.dumps(load_yaml(DUKD_FILE)['train']['distill_opts']))


# recipe -> (what it is, distill_opts or None for the student alone, distill overrides)
RECIPES = {
    'student': ('student alone (SRModel, L1)', None, {}),
    'output': ('output distillation (L1 to the teacher SR, weight 0.5)', lambda: [OUTPUT], {}),
    'output_offline': ('output distillation, offline teacher', lambda: [OUTPUT], {'teacher': 'offline'}),
    'default': ('previous default: feature statistics (AT map, 0.1) + output (0.5)', lambda: [FS, OUTPUT], {}),
    'default_offline': ('previous default, offline teacher', lambda: [FS, OUTPUT], {'teacher': 'offline'}),
    # the default helped at 2-4k iterations and fell behind from 6-8k (validation split, seeds 0 and 1)
    'default_fade': ('previous default, offline teacher, faded out from 2k to 6k (distill.fade)',
                     lambda: [FS, OUTPUT], {'teacher': 'offline', 'fade': [2000, 6000]}),
    # the faded default's feature term, with the output term kept to the end (a term's own fade: false)
    # (the default of options/imdn_kd.yml at 20,000 iterations and longer: its fade, 10%-30% of the budget at
    # most 2,000-6,000 iterations, is this window there; issue 29)
    'fade_keep_output': ('previous default, offline teacher, feature statistics faded out from 2k to 6k, '
                         'output term kept to the end', lambda: [FS, dict(OUTPUT, fade=False)],
                         {'teacher': 'offline', 'fade': [2000, 6000]}),
    # around fade_keep_output (seed 0, chosen on the validation split): a stronger feature term in the warm
    # start, a quicker fade (the faded default lost its lead between 4k and 6k), a heavier output term
    'fko_fs03': ('fade_keep_output with the feature term at weight 0.3', lambda: [dict(FS, loss_weight=0.3),
                 dict(OUTPUT, fade=False)], {'teacher': 'offline', 'fade': [2000, 6000]}),
    'fko_fade4k': ('fade_keep_output with the feature term faded out from 2k to 4k',
                   lambda: [FS, dict(OUTPUT, fade=False)], {'teacher': 'offline', 'fade': [2000, 4000]}),
    'fko_out1': ('fade_keep_output with the output term at weight 1.0', lambda: [FS, dict(OUTPUT, loss_weight=1.0,
                 fade=False)], {'teacher': 'offline', 'fade': [2000, 6000]}),
    # issue 29: at 100,000 iterations the feature term's share of the gain shrinks (+0.075 at 20k, +0.02 at 100k,
    # seed 0) while the output term's grows (+0.025 -> +0.045): a heavier output term to the end. Rule, written
    # before either ran: at 100,000 (seed 0) the candidate with the highest validation PSNR replaces
    # fade_keep_output as the default only if it is >= 0.02 dB above fade_keep_output:0 (28.192) there
    'fko_out2': ('fade_keep_output with the output term at weight 2.0', lambda: [FS, dict(OUTPUT, loss_weight=2.0,
                 fade=False)], {'teacher': 'offline', 'fade': [2000, 6000]}),
    # the output term, but only where the teacher is closer to the HR than the student (teacher-bounded)
    'output_gated': ('output distillation gated to the values where the teacher is closer to the HR than the '
                     'student (gate: teacher_closer), offline teacher',
                     lambda: [dict(OUTPUT, gate='teacher_closer')], {'teacher': 'offline'}),
    'dukd': ('DUKD (options/dukd.yml: output 0.2, zoom-in with label consistency 0.2, zoom-out 0.2 + recon 1.0)', _dukd_terms, {}),
}

# The zoo's terms at this budget (issue 13): each term as scripts/zoo_benchmark.py defines it (the papers'
# defaults), at the weight that benchmark calibrated (its gradient share 0.25 of the L1 loss at
# initialisation; docs/zoo.md, the corrected rows for the terms issue 13 changed). Sobolev is left out:
# at 6.5 student steps a step it is to be compared at equal wall time, which this study does not run.
ZOO_WEIGHTS = {'FitNet': 0.427, 'AT': 116, 'FT': 8.52, 'NST': 0.0491, 'AB': 0.288, 'OFD': 0.461, 'AFD': 149,
               'VID': 137, 'SP': 1.31, 'CC': 0.306, 'RKD': 0.0138, 'PKT': 23.7, 'IRG': 0.045, 'CRD': 0.0176,
               'pair-wise': 0.152, 'pair-wise (released)': 0.365, 'holistic': 1.77, 'FSP': 7.08, 'KD-SVD': 1.23,
               'MHGD': 0.00733, 'DML': 0.275}


def zoo_recipe(method: str) -> Tuple[str, tuple]:
    """(recipe name, recipe) of one zoo term: its name is the method's in lower case ('pair-wise
    (released)' -> 'pair_wise_released'), its one term is named the same."""
    from scripts.zoo_benchmark import METHODS
    name = re.sub(r'[^a-z0-9]+', '_', method.lower()).strip('_')
    term = dict(copy.deepcopy(METHODS[method][0]), name=name, loss_weight=ZOO_WEIGHTS[method])
    return name, (f'{method} (weight {ZOO_WEIGHTS[method]:g}, docs/zoo.md)', lambda: [copy.deepcopy(term)], {})


ZOO_RECIPES = dict(zoo_recipe(m) for m in ZOO_WEIGHTS)
RECIPES.update(ZOO_RECIPES)
# the two that paid at seed 0 together: fade_keep_output's terms plus NST kept to the end (NST compares full
# teacher features, so the teacher runs online)
RECIPES['fade_keep_output_nst'] = (
    'fade_keep_output plus NST (weight 0.0491) kept to the end, online teacher',
    lambda: RECIPES['fade_keep_output'][1]() + [dict(ZOO_RECIPES['nst'][1]()[0], fade=False)],
    {'teacher': 'online', 'fade': [2000, 6000]})
# holistic's critic, once trained, pushes the student about 4 times harder than at initialisation (gradient
# share 0.22 -> 1.06 at 2,000 iterations, scripts/term_share.py): its weight recalibrated to share 0.25 there
RECIPES['holistic_trained_share'] = (
    'holistic at weight 0.42 (gradient share 0.25 against the critic trained 2,000 iterations)',
    lambda: [dict(ZOO_RECIPES['holistic'][1]()[0], loss_weight=0.42)], {})
# at 0.42 the student still fell to 24.33 dB at 2,000 iterations (alone 26.98): the critic's push is against
# fidelity, so a share of the task's gradient is no measure of a safe weight; try one 100 times under it
RECIPES['holistic_low'] = ('holistic at weight 0.0177 (the calibrated 1.77 / 100)',
                           lambda: [dict(ZOO_RECIPES['holistic'][1]()[0], loss_weight=0.0177)], {})
# options/imdn_kd.yml's terms with its fade as fractions of the budget alone (its default until issue 29: at
# 20,000 it is fade_keep_output; at 100,000 the feature term fades from 10,000 to 30,000, where the gain dipped,
# so the default now caps the window at 2,000-6,000 iterations):
#   python -m scripts.kd_study --runs student:0,imdn_kd:0,output_offline:0 --iters 100000
RECIPES['imdn_kd'] = ("options/imdn_kd.yml's terms, fade as fractions of the budget alone (the default until "
                      'issue 29)', lambda: _file_terms(), {'teacher': 'offline', 'fade': [0.1, 0.3]})


def _file_terms():
    from sr_kd.options import load_yaml
    return json.loads(json.dumps(load_yaml(os.path.join(REPO, 'options', 'imdn_kd.yml'))['train']['distill_opts']))


# The question users ask first (does the default beat the student alone, over 3 seeds?), then one seed of
# every other recipe, cheapest first (DUKD costs about five student steps).
PLAN = ['student:0', 'default_offline:0', 'student:1', 'default_offline:1', 'student:2', 'default_offline:2',
        'default_fade:0', 'output_offline:0', 'output_gated:0', 'output:0', 'default:0', 'at:0', 'ft:0', 'nst:0',
        'dukd:0']


def split_names(root: str) -> Tuple[List[str], List[str]]:
    """(training names, validation names): every 10th image (sorted) is held out for validation."""
    from sr_kd.data.image_source import list_hr_images
    names = [os.path.splitext(os.path.basename(p))[0] for p in list_hr_images(root)]
    return [n for i, n in enumerate(names) if i % 10], names[::10]


def schedule(iters: int) -> dict:
    """The study's learning-rate schedule for a budget: halved at 1/2, 3/4 and 9/10 of the iterations."""
    return {'type': 'MultiStepLR', 'gamma': 0.5, 'milestones': [iters // 2, iters * 3 // 4, iters * 9 // 10]}


def options(recipe: str, seed: int, iters: int, data_root: str, teacher: str,
            crop: Optional[Tuple[int, int]] = None, workers: int = 0) -> dict:
    """The option dict of one run, built from options/imdn_kd.yml so the study measures what users run;
    ``crop`` (HR crop, batch) replaces the file's 96 / 8 (the paper's 192 / 16 on a GPU); ``workers`` data
    loader processes (0 on the CPU machine: one thread a run; on a GPU they make the crops while it trains)."""
    from sr_kd.options import load_yaml
    opt = json.loads(json.dumps(load_yaml(os.path.join(REPO, 'options', 'imdn_kd.yml'))))  # plain dicts
    _, terms, distill = RECIPES[recipe]
    _, val_names = split_names(data_root)
    opt['name'] = run_name(recipe, seed, iters, crop)
    opt['manual_seed'] = seed
    opt['datasets']['train'].update(name='train291_minus_val', dataroot_gt=data_root, exclude=val_names,
                                    dataset_enlarge_ratio=100)
    if crop:
        opt['datasets']['train'].update(gt_size=crop[0], batch_size_per_gpu=crop[1])
    opt['datasets']['train']['num_worker_per_gpu'] = workers
    opt['datasets']['val'] = {'name': 'train_val_split', 'type': 'HROnlyDataset', 'dataroot_gt': data_root,
                              'images': val_names}
    opt['path'].update(pretrain_network_t=teacher, param_key_t=None)
    opt['train'].update(total_iter=iters)
    opt['train']['scheduler'] = schedule(iters)
    opt['val']['val_freq'] = min(iters // 10, 5000)  # 2,000 at the 20k budget; every 5,000 at 100k (issue 29)
    opt['logger'].update(print_freq=100, save_checkpoint_freq=1000, use_tb_logger=False)
    if terms is None:
        opt['model_type'] = 'SRModel'
        for key in ('network_t', 'distill'):
            opt.pop(key)
        opt['train'].pop('distill_opts', None)
    else:
        # a recipe is its terms and overrides alone: imdn_kd.yml's own fade applies only where a recipe sets one
        # the pairs are options/imdn_kd.yml's own
        opt['distill'] = dict(opt['distill'], **{'teacher': 'online', 'fade': None, **distill})
        opt['train']['distill_opts'] = copy.deepcopy(terms())
    return opt


def exp_dir(opt: dict, root: str) -> str:
    return os.path.join(root, 'experiments', opt['name'])


def _rows():
    from sr_kd.jsonl import read_rows
    return read_rows(RESULTS)


def finished_names() -> Set[str]:
    return {r['name'] for r in _rows()}


def iteration_seconds(folder: str) -> Optional[float]:
    """Median training seconds per iteration over every log of the run (BasicSR's 'time (data)')."""
    times = []
    for log in glob.glob(os.path.join(folder, 'train_*.log')):
        with open(log, errors='replace') as f:
            times += [float(m) for m in re.findall(r'time \(data\): ([\d.]+)', f.read())]
    return statistics.median(times) if times else None


def benchmark_sets() -> List[Tuple[str, str, Optional[str]]]:
    """(name, HR folder, LR folder or None) of the test sets present."""
    sets = []
    for name in ('Set5', 'Set14'):
        hr = os.path.join(SHARED, 'benchmarks', name, 'HR')
        if os.path.isdir(hr):
            sets.append((name, hr, os.path.join(SHARED, 'benchmarks', name, 'LR_bicubic', 'X4')))
    for name in ('B100', 'Urban100', 'Manga109'):
        hr = os.path.join(REPO, 'datasets', 'benchmarks', name, 'HR')
        if os.path.isdir(hr):
            lr = os.path.join(REPO, 'datasets', 'benchmarks', name, 'LR_bicubic', 'X4')
            sets.append((name, hr, lr if os.path.isdir(lr) else None))
    return sets


def evaluate_run(opt: dict, root: str) -> Dict[str, dict]:
    """Test-set PSNR/SSIM (Y, border 4) of the run's final student."""
    import torch

    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from sr_kd.archs.loading import load_model
    from sr_kd.evaluate import evaluate

    torch.set_num_threads(1)
    net, info = load_model(os.path.join(exp_dir(opt, root), 'models', 'net_g_latest.pth'), 'params')
    net.eval()
    out = {}
    with torch.no_grad():
        for name, hr, lr in benchmark_sets():
            out[name] = evaluate(net, info, hr, 4, lr, progress=False)['mean']
    return out


def validation_curve(folder: str, model_type: str) -> List[Tuple[int, float, float]]:
    """[(iteration, PSNR, SSIM)] on the validation split, from the run's log(s)."""
    path = os.path.join(folder, 'val_metrics.jsonl')
    if model_type == 'SRKDModel' and os.path.isfile(path):
        from sr_kd.jsonl import read_rows
        rows = read_rows(path)
        return sorted({r['iter']: (r['iter'], r['student']['psnr'], r['student']['ssim']) for r in rows}.values())
    curve, it = {}, None
    for log in sorted(glob.glob(os.path.join(folder, 'train_*.log'))):
        psnr = None
        with open(log, errors='replace') as f:
            for line in f:
                m = re.search(r'iter:\s*([\d,]+)', line)
                if m:  # BasicSR validates right after logging that iteration
                    it = int(m.group(1).replace(',', ''))
                m = re.search(r'# (psnr|ssim): ([\d.]+)', line)
                if m and it is not None:
                    if m.group(1) == 'psnr':
                        psnr = float(m.group(2))
                    elif psnr is not None:
                        curve[it] = (it, psnr, float(m.group(2)))
    return sorted(curve.values())


def save_progress(root: str) -> None:
    """Keep the newest state and the logs of every unfinished study run under ``root`` in PROGRESS."""
    done = finished_names()
    for folder in glob.glob(os.path.join(root, 'experiments', 'kd_study_*')):
        name = os.path.basename(folder)
        if name not in done and '_archived_' not in name:
            keep_progress(folder, folder, os.path.join(PROGRESS, name))


def start(run: str, args: argparse.Namespace) -> Tuple[subprocess.Popen, dict]:
    recipe, seed = run.split(':')
    opt = options(recipe, int(seed), args.iters, args.data, args.teacher, args.crop, args.workers)
    from sr_kd.atomic import atomic_write_text
    import yaml
    os.makedirs(os.path.join(OUT, 'options'), exist_ok=True)
    opt_path = os.path.join(OUT, 'options', f'{opt["name"]}.yml')
    atomic_write_text(opt_path, yaml.safe_dump(opt, sort_keys=False))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               SR_KD_ROOT=args.root)
    restore_progress(os.path.join(PROGRESS, opt['name']), exp_dir(opt, args.root))
    log = open(os.path.join(args.root, 'logs', f'{opt["name"]}.out'), 'a')
    cmd = [sys.executable, os.path.join(REPO, 'sr_kd', 'train.py'), '-opt', opt_path]
    if os.path.isdir(os.path.join(exp_dir(opt, args.root), 'training_states')):
        cmd.append('--auto_resume')
    print(f'[{time.strftime("%H:%M:%S")}] start {run} ({RECIPES[recipe][0]}): {" ".join(cmd[1:])}', flush=True)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), opt


def record(run: str, opt: dict, rc: int, root: str) -> None:
    folder = exp_dir(opt, root)
    if rc != 0 or not os.path.isfile(os.path.join(folder, 'models', 'net_g_latest.pth')):
        print(f'[{time.strftime("%H:%M:%S")}] {run} stopped with status {rc}: see {root}/logs/', flush=True)
        return
    recipe, seed = run.split(':')
    row = {'run': run, 'recipe': recipe, 'seed': int(seed), 'iters': opt['train']['total_iter'],
           'name': opt['name'], 'sec_per_iter': iteration_seconds(folder),
           'curve': validation_curve(folder, opt['model_type']), 'test': evaluate_run(opt, root),
           'machine': machine(), 'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
    crop = parse_run_name(opt['name']).crop
    if crop:  # not the study's crop: the report keeps these runs apart
        row['crop'] = list(crop)
    from sr_kd.jsonl import append_row
    append_row(RESULTS, row)
    import shutil
    shutil.rmtree(os.path.join(PROGRESS, opt['name']), ignore_errors=True)
    print(f'[{time.strftime("%H:%M:%S")}] done {run}: ' + ', '.join(f'{k} {v["psnr"]:.3f}' for k, v in row['test'].items()),
          flush=True)


def run_plan(runs: List[str], args: argparse.Namespace) -> None:
    os.makedirs(os.path.join(args.root, 'logs'), exist_ok=True)
    done = finished_names()
    todo = [r for r in runs if r.split(':')[0] in RECIPES
            and run_name(r.split(':')[0], int(r.split(':')[1]), args.iters, args.crop) not in done]
    active, kept = [], time.time()
    while todo or active:
        if time.time() - kept > 300:  # the session may stop at any moment: keep what the runs have reached
            try:
                save_progress(args.root)
            except OSError as e:  # e.g. a full disk: the runs go on, the next round tries again
                print(f'could not keep progress ({e})', flush=True)
            kept = time.time()
        while todo and len(active) < args.jobs:
            run = todo.pop(0)
            try:
                proc, opt = start(run, args)
            except Exception as e:  # noqa: BLE001 - e.g. a recipe whose option file is not there yet
                print(f'{run}: cannot start ({type(e).__name__}: {e})', flush=True)
                continue
            active.append((run, proc, opt))
        time.sleep(5)
        for item in list(active):
            run, proc, opt = item
            if proc.poll() is not None:
                active.remove(item)
                try:
                    record(run, opt, proc.returncode, args.root)
                except Exception as e:  # noqa: BLE001 - one run's evaluation must not stop the study
                    print(f'{run}: evaluation failed ({type(e).__name__}: {e}); rerun the study to retry', flush=True)


def _crop(text: str) -> Tuple[int, int]:
    try:
        hr, batch = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'--crop is HR,BATCH (e.g. 192,16), not {text!r}') from None
    if hr <= 0 or hr % 4 or batch <= 0:
        raise argparse.ArgumentTypeError(f'--crop {text}: HR must be a positive multiple of 4, BATCH positive')
    return hr, batch


def import_device(folder: str, root: str) -> None:
    """Add the rows a GPU machine wrote (``rows.jsonl``, test sets not evaluated there: ../shared's benchmarks
    do not travel) to results.jsonl with Set5/Set14 evaluated here on the weights it sent (``runs.tar``)."""
    import tarfile

    from sr_kd.jsonl import append_row, read_rows
    with tarfile.open(os.path.join(folder, 'runs.tar')) as tar:
        tar.extractall(os.path.join(root, 'experiments'), filter='data')
        sent = {p.split('/')[1] for p in tar.getnames() if p.count('/') >= 1 and p.startswith('./kd_study_')}
    done, rows = finished_names(), read_rows(os.path.join(folder, 'rows.jsonl'))
    for row in rows:
        if row['name'] not in done:
            row['test'] = evaluate_run({'name': row['name']}, root)
            append_row(RESULTS, row)
            print(f'{row["run"]} ({row["name"]}): ' + ', '.join(f'{k} {v["psnr"]:.3f}' for k, v in row['test'].items()))
    for name in sorted(sent - {r['name'] for r in rows}):  # stopped by the deadline: what it reached
        parsed = parse_run_name(name)
        curve = validation_curve(exp_dir({'name': name}, root), 'SRModel' if parsed.recipe == 'student' else 'SRKDModel')
        print(f'{name}: not finished, not added; validation PSNR by iteration: '
              + (', '.join(f'{i} {p:.3f}' for i, p, _ in curve) or 'none yet'))


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--runs', help='comma-separated recipe:seed (default: the plan); recipes: ' + ', '.join(RECIPES))
    p.add_argument('--iters', type=int, default=20000)
    p.add_argument('--jobs', type=int, default=2, help='runs at a time')
    p.add_argument('--threads', type=int, default=1, help='threads per run')
    p.add_argument('--workers', type=int, default=0, help='data loader processes per run (a GPU machine\'s spare cores)')
    p.add_argument('--data', default=os.path.join(SHARED, 'train'))
    p.add_argument('--teacher', default=os.path.join(SHARED, 'pretrained', 'IMDN_x4.pth'))
    p.add_argument('--root', default=os.path.join(STUDY_ROOT, 'kd'), help='where the runs live (outside the repository)')
    p.add_argument('--report', action='store_true', help='only write docs/kd_study.md and the plots')
    p.add_argument('--save-progress', action='store_true',
                   help='only keep the newest checkpoint of each unfinished run in docs/kd_study/progress/')
    p.add_argument('--crop', type=_crop, help='HR,BATCH instead of the study\'s 96,8 (the paper\'s 192,16 on a GPU: '
                   'scripts/kd_study_gpu.sh); such runs are named and reported apart')
    p.add_argument('--import-device', metavar='FOLDER', help="only add the finished rows of a GPU machine's run "
                   '(FOLDER: what scripts/kd_study_gpu.sh left in $OUT) to results.jsonl, their test sets evaluated here')
    args = p.parse_args(argv)
    if args.save_progress:
        return save_progress(args.root)
    if args.import_device:
        sent = [os.path.join(args.import_device, f) for f in ('rows.jsonl', 'runs.tar')]
        if not all(map(os.path.isfile, sent)):
            sys.exit(f'kd_study: error: {args.import_device} lacks rows.jsonl or runs.tar (what '
                     'scripts/kd_study_gpu.sh leaves in $OUT)')
        import_device(args.import_device, args.root)
    if not args.report and not args.import_device:
        for path in (args.data, args.teacher):
            if not os.path.exists(path):
                sys.exit(f'kd_study: error: {path} not found (the study needs ../shared)')
        run_plan(args.runs.split(',') if args.runs else PLAN, args)
    from scripts.kd_study_report import write_report
    write_report(RESULTS, OUT, sys.modules[__name__], args.root)


if __name__ == '__main__':
    main()
