"""``sr-kd distill TEACHER --images DIR -o OUT``: a fast student of a slow model, without ground truth.

Every input is checked first (one line, exit 2, nothing written). Then: a student chosen by measured speed
(``sr_kd.distill.students``), a held-out split of the images, the option file written into OUT and trained
by ``sr_kd/train.py`` (validated against the teacher, best checkpoint kept), and at the end
``student.safetensors``, ``student.onnx``, ``report.png`` and ``summary.json`` (``sr_kd.distill.job``).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

from sr_kd.errors import SRKDError

ORDER = 5  # its place in sr-kd --help
HELP = 'make a fast student of a slow model from your images, without ground truth (no option file needed)'

PLAN, OPTIONS, INIT = 'distill.json', 'options.yml', 'init_from_teacher.pth'  # in OUT


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sr_kd.distill.recipes import AUTO_CUT, AUTO_OTHER, DEFAULT, RECIPES
    from sr_kd.distill.students import PRESETS
    p.add_argument('teacher', nargs='?', help='the slow model: any weights file sr_kd or spandrel loads (.pth, '
                                              '.safetensors); with --resume, the run\'s own when left out')
    p.add_argument('--images', help='a folder of your images (no ground truth): each one a student input; '
                                    '10%% (at least 3) are held out to validate against the teacher')
    p.add_argument('--hr', help='instead of --images: a folder of HR images (ground truth); inputs are their '
                                'bicubic LR, the task loss is added and validation is against HR and teacher')
    p.add_argument('-o', '--out', required=True, help='output folder (created; must not hold another run)')
    p.add_argument('--student', default='auto', help=f'auto (by measured speed) or one of: {", ".join(PRESETS)}')
    p.add_argument('--speedup', type=float, default=4.0,
                   help='auto: the student must be at least this many times faster than the teacher')
    budget = p.add_mutually_exclusive_group()
    budget.add_argument('--minutes', type=float, help='training time (default 30; the teacher cache is built '
                                                      'once beforehand and not counted)')
    budget.add_argument('--iters', type=int, help='training iterations instead of minutes')
    p.add_argument('--recipe', default=DEFAULT, choices=['auto', *RECIPES], help='how the student imitates '
                   f'(docs/distill.md measures each; auto: {AUTO_CUT} for a Compact teacher and student, else '
                   f'{AUTO_OTHER})')
    p.add_argument('--device', default='cpu', help="cpu or cuda")
    p.add_argument('--threads', type=int, default=0, help='CPU threads (0: torch\'s default)')
    p.add_argument('--seed', type=int, default=0, help='seed of the split and of training')
    p.add_argument('--cache-dir', help='where the offline teacher cache goes (default $SR_KD_CACHE/teacher_cache, '
                                       'shared by every run of the same teacher and images)')
    p.add_argument('--resume', action='store_true', help='continue the run in OUT (after Ctrl-C or a kill)')
    p.add_argument('--no-onnx', action='store_true', help='skip student.onnx')


def _check(args):
    """Every refusal that needs no model, before any work."""
    import math

    import torch

    from sr_kd import cli_checks
    from sr_kd.distill.recipes import recipe
    from sr_kd.distill.students import PRESETS
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise SRKDError(f'--minutes must be a number > 0, not {args.minutes:g}')
    if args.iters is not None and args.iters < 10:
        raise SRKDError(f'--iters must be at least 10, not {args.iters}')
    if not (math.isfinite(args.speedup) and args.speedup >= 1):
        raise SRKDError(f'--speedup must be >= 1, not {args.speedup:g}')
    if args.threads < 0:
        raise SRKDError(f'--threads must be >= 0, not {args.threads}')
    if args.student != 'auto' and args.student not in PRESETS:
        raise SRKDError(f'--student must be auto or one of {", ".join(PRESETS)}; got {args.student!r}')
    if args.recipe != 'auto':
        recipe(args.recipe)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise SRKDError(f'--device must be cpu or cuda[:N], not {args.device!r}') from e
    if device.type == 'cuda' and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise SRKDError(f'--device {args.device} was asked for, but torch sees no such CUDA device')
    if device.type not in ('cpu', 'cuda'):
        raise SRKDError(f'--device must be cpu or cuda[:N], not {args.device!r}')
    plan_file = os.path.join(args.out, PLAN)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise SRKDError(f'-o {args.out} is a file; name a folder')
    if args.resume:
        if not os.path.isfile(plan_file):
            raise SRKDError(f'--resume: {args.out} holds no distillation run (no {PLAN})')
        if args.teacher is None:
            with open(plan_file) as f:
                args.teacher = json.load(f)['teacher']
    else:
        if args.teacher is None:
            raise SRKDError('name the teacher: sr-kd distill TEACHER.pth --images DIR -o OUT')
        if bool(args.images) == bool(args.hr):
            raise SRKDError('give your images with --images DIR (no ground truth) or --hr DIR (ground truth), '
                            'one of them')
        if os.path.isdir(args.out) and os.listdir(args.out):
            hint = '; --resume continues it' if os.path.isfile(plan_file) else ''
            raise SRKDError(f'{args.out} already exists and is not empty{hint}; choose another -o')
        folder = args.images or args.hr
        flag = '--images' if args.images else '--hr'
        if not os.path.isdir(folder):
            raise SRKDError(f'{flag}: folder not found: {folder}')
        inside = os.path.commonpath([os.path.abspath(folder), os.path.abspath(args.out)]) == os.path.abspath(folder)
        if inside:
            raise SRKDError(f'-o {args.out} is inside {flag} {folder}: its images would become training images')
        # OUT is made beside itself and renamed into place: its folder must take files (a file on the way,
        # /proc, a read-only mount refused here, not after the timing)
        cli_checks.writable_folder(os.path.dirname(os.path.abspath(args.out)), f'-o {args.out}: the folder')
        cli_checks.writable_folder(cache_root(args), '--cache-dir')
    if not os.path.isfile(args.teacher):
        raise SRKDError(f'teacher not found: {args.teacher}')
    if args.resume:
        _same_as_planned(args, plan_file)


def cache_root(args: argparse.Namespace) -> str:
    """Where the offline teacher cache goes: --cache-dir, else $SR_KD_CACHE/teacher_cache."""
    from sr_kd.run_paths import cache_home
    return os.path.abspath(args.cache_dir or os.path.join(cache_home(), 'teacher_cache'))


def _same_as_planned(args, plan_file):
    """--resume continues OUT as it was planned: a teacher, images or budget given that differ from the plan
    are refused (they used to be ignored without a word), the same ones are accepted."""
    with open(plan_file) as f:
        plan = json.load(f)
    given = {'teacher': os.path.abspath(args.teacher),
             'images': os.path.abspath(args.images or args.hr) if args.images or args.hr else None,
             'total_iter': args.iters, 'minutes': args.minutes,
             'student': None if args.student == 'auto' else args.student}
    flags = {'teacher': 'the teacher', 'images': '--images/--hr', 'total_iter': '--iters', 'minutes': '--minutes',
             'student': '--student'}
    for key, value in given.items():
        if value is not None and key in plan and value != plan[key]:
            raise SRKDError(f'--resume continues {args.out} as it was started, with {flags[key]} {plan[key]}, '
                            f'not {value}; leave {flags[key]} out, or start a new run with another -o')


def _images(folder, seed, min_side):
    """(training names, held-out paths) of the folder: every image readable, at least ``min_side`` on its
    shorter side (the crop, and enough for a validation PSNR), names unique; else one line."""
    from sr_kd.image_io import image_size
    from sr_kd.data.image_source import list_hr_images
    from sr_kd.distill.job import split
    paths = list_hr_images(folder)
    by_name = {}
    for p in paths:
        name = os.path.splitext(os.path.basename(p))[0]
        if name in by_name:
            raise SRKDError(f'two images are named {name}: {by_name[name]} and {p}; names must be unique')
        by_name[name] = p
        w, h = image_size(p, verify=True)
        if min(w, h) < min_side:
            raise SRKDError(f'{p} is {w}x{h}: every image must be at least {min_side} px on its shorter side '
                            '(the training crop); leave smaller ones out')
    train, held = split(paths, seed)
    return train, [by_name[n] for n in held]


def _precision(device):
    from sr_kd.backends import resolve_precision
    return resolve_precision('auto', device, 'eager')


def _plan(args):
    """Choose the student, calibrate the budget, write OUT/options.yml and OUT/distill.json. Everything is
    written into a temporary folder that becomes OUT when complete: a killed plan leaves no OUT."""
    import shutil

    from sr_kd.archs.loading import load_state_dict_model, read_state_dict
    from sr_kd.atomic import atomic_write_text
    from sr_kd.distill import job, recipes, students
    teacher_sd = read_state_dict(args.teacher)  # read once: the model, recipe auto and the cut student use it
    teacher, info = load_state_dict_model(teacher_sd, args.teacher)
    teacher = teacher.to(args.device)
    if info.resizes_input:
        raise SRKDError(f'{args.teacher} is {info.label}, which takes a resized input; it cannot teach a student')
    auto = args.recipe == 'auto'
    if auto:
        args.recipe = recipes.resolve('auto', teacher_sd, args.student)
    mode, lq_size, _, _ = recipes.recipe(args.recipe)
    if recipes.starts_from_teacher(args.recipe):
        _init_from_teacher(teacher_sd, args.teacher, None)  # the teacher must be a Compact: said before the timing
    folder = os.path.abspath(args.images or args.hr)
    train_names, held = _images(folder, args.seed, lq_size * (info.scale if args.hr else 1))
    if auto:  # said once the inputs passed: a refusal stays one line
        print(f'recipe auto: {args.recipe} (docs/distill.md)', flush=True)
    x = job.read_input(held[0], info.scale, bool(args.hr)).to(args.device)
    precision = _precision(args.device)
    print(f'timing the teacher ({info.label}) and the student presets on {held[0]} '
          f'({x.shape[3]}x{x.shape[2]}, eager {precision}, as sr-kd upscale runs them) ...', flush=True)
    names = None if args.student == 'auto' else [args.student]
    if names is None and recipes.starts_from_teacher(args.recipe):  # a student cut from a Compact is a Compact
        names = [n for n, o in students.PRESETS.items() if o['type'] == 'Compact']
    rows = students.time_candidates(teacher, info, info.scale, x, precision, names)
    chosen = students.choose(rows, args.speedup) if args.student == 'auto' else rows[1]
    print(students.speed_table(rows, chosen.name), flush=True)
    note = students.busy_note(rows)
    if note:
        print(note, flush=True)
    student_opt = students.network_opt(chosen.name, info.scale)
    init = _init_from_teacher(teacher_sd, args.teacher, student_opt) if recipes.starts_from_teacher(args.recipe) \
        else None
    if args.iters:
        total, step = args.iters, None
    else:
        step = job.step_seconds(student_opt, teacher, lq_size, mode == 'online', args.device)
        total = job.iterations_for(args.minutes or 30, step)
        print(f'one training step measured {step * 1000:.0f} ms: {args.minutes or 30:g} minutes are {total} '
              'iterations', flush=True)
    slow_validation = job.validation_note(len(held), rows[0].seconds, chosen.seconds, step and step * total, held[0])
    if slow_validation:
        print(slow_validation, flush=True)
    cache = cache_root(args)
    opt = job.option_file(teacher_path=os.path.abspath(args.teacher), scale=info.scale, student_opt=student_opt,
                          images=folder, train_names=train_names,
                          val_names=[os.path.splitext(os.path.basename(p))[0] for p in held],
                          recipe_sections=recipes.sections(args.recipe, total, cache, info.scale), lq_size=lq_size,
                          total_iter=total, seed=args.seed, hr=bool(args.hr), device=args.device,
                          augment=recipes.augments(args.recipe))
    tmp = f'{os.path.abspath(args.out)}.partial-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if init is not None:
        from sr_kd.atomic import atomic_save
        atomic_save({'params': init}, os.path.join(tmp, INIT))
        opt['path'].update(pretrain_network_g=os.path.join(os.path.abspath(args.out), INIT), param_key_g='params')
    import yaml
    from sr_kd.run_paths import train_command
    out_abs = os.path.abspath(args.out)
    atomic_write_text(os.path.join(tmp, OPTIONS),
                      f'# written by: sr-kd distill (recipe {args.recipe}); edit and re-run with\n'
                      f'#   {train_command(os.path.join(out_abs, OPTIONS), root=out_abs)}\n'
                      + yaml.safe_dump(opt, sort_keys=False, width=120))
    plan = {'teacher': os.path.abspath(args.teacher), 'images': folder, 'recipe': args.recipe, 'student': chosen.name,
            'hr': bool(args.hr), 'held_out': held, 'device': args.device, 'precision': precision,
            'step_seconds': step, 'total_iter': total, 'minutes': args.minutes, 'threads': args.threads,
            'candidates': [vars(r) for r in rows]}
    atomic_write_text(os.path.join(tmp, PLAN), json.dumps(plan, indent=1) + '\n')
    if os.path.isdir(args.out):  # checked empty
        os.rmdir(args.out)
    os.rename(tmp, args.out)
    return plan


def _init_from_teacher(teacher_sd, teacher_file, student_opt):
    """The student's first weights cut from the teacher's state dict (refused in one line where the families
    differ); ``student_opt`` None: only check that the teacher can be cut."""
    from basicsr.archs import build_network

    from sr_kd.distill.init_from_teacher import compact_layers, compact_from_compact
    if student_opt is None:
        compact_layers(teacher_sd, f'--recipe init-*: the teacher {teacher_file}')
        return None
    if student_opt['type'] != 'Compact':
        raise SRKDError('--recipe init-*: a student cut from its teacher must be a Compact preset, '
                        f'not {student_opt["type"]}')
    return compact_from_compact(teacher_sd, build_network(dict(student_opt)).state_dict())


def _train(args, resume):
    """Train through sr_kd/train.py in a child process (BasicSR's pipeline as a researcher runs it)."""
    env = dict(os.environ, SR_KD_ROOT=os.path.abspath(args.out))
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    cmd = [sys.executable, '-m', 'sr_kd.train', '-opt', os.path.join(args.out, OPTIONS)] + (
        ['--auto_resume'] if resume else [])
    proc = subprocess.Popen(cmd, env=env)  # in our process group: a terminal's Ctrl-C or hang-up reaches it too
    try:
        return proc.wait()
    except KeyboardInterrupt as e:
        _stop(proc, e)
        raise


def _stop(proc: subprocess.Popen, e: KeyboardInterrupt, grace: float = 3.0) -> None:
    """End the training child as we were ended, and wait for it (its checkpoints kept). A terminal's Ctrl-C
    reached it too and it is ending; a signal sent to sr-kd alone (`kill -INT`, a GUI's stop button) did not:
    passed on if it still runs after ``grace`` seconds. A further interruption is passed on at once, so the
    child is never left training behind an exited sr-kd."""
    import signal

    from sr_kd.errors import Terminated
    timeout = grace
    while True:
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt as again:
            e = again
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
        timeout = None


def run(args: argparse.Namespace) -> int:
    _check(args)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from sr_kd.distill import job
    again = f'sr-kd distill -o {shlex.quote(args.out)} --resume'
    if args.resume:
        with open(os.path.join(args.out, PLAN)) as f:
            plan = json.load(f)
    else:
        plan = _plan(args)
    args._interrupted_hint = f'; nothing trained yet; continue with: {again}'
    if args.resume and os.path.isfile(os.path.join(args.out, 'summary.json')):
        print(f'{args.out} finished already: writing its results again', flush=True)
    else:
        try:
            rc = _train(args, args.resume)
        finally:  # said after an interruption: what is there now
            if job.saved_checkpoint(args.out):
                args._interrupted_hint = (f'; the best student so far stays in {job.experiment(args.out)}/models; '
                                          f'continue with: {again}')
        if rc:
            raise SRKDError(f'training stopped (exit {rc}; its last line above says why); continue with: {again}')
    from sr_kd.distill.finish import finish
    finish(args.out, plan, onnx=not args.no_onnx)
    return 0
