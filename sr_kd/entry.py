"""Shared start-up of ``sr_kd/train.py`` and ``sr_kd/test.py``: import the project (repairs + registries),
apply sr_kd's own run behaviour, check the option file before anything runs, hold the experiment's lock,
and end every failure in one line (exit 2; 130 for Ctrl-C) that says what the run left and where."""
import errno
import os
import sys

from sr_kd.run_paths import root_path

USAGE = {
    'train': ('usage: python sr_kd/train.py -opt OPTIONS.yml [--auto_resume] [--launcher {none,pytorch,slurm}] '
              '[--debug] [--force_yml KEY=VALUE ...]\n\n'
              "BasicSR's training pipeline with sr_kd's archs, models, losses and datasets registered.\n"
              '  -opt OPTIONS.yml  the option file (checked before anything runs)\n'
              '  --auto_resume     continue from the last complete checkpoint of experiments/NAME\n'
              '  --launcher L      none (default) or pytorch (torchrun) / slurm for distributed training\n'
              "  --debug           basicsr's debug mode (name debug_NAME, frequent logs and checkpoints)\n"
              '  --force_yml K=V   override option keys, e.g. train:total_iter=100\n'
              'Experiments go to $SR_KD_ROOT/experiments (default: the repository). Exit status: 0; 2 for a '
              'bad input (one line); 130 when interrupted.'),
    'test': ('usage: python sr_kd/test.py -opt OPTIONS.yml [--launcher {none,pytorch,slurm}]\n\n'
             "BasicSR's test pipeline with sr_kd registered; results go to $SR_KD_ROOT/results/NAME.\n"
             'Exit status: 0; 2 for a bad input (one line); 130 when interrupted.'),
}


def _run_name(opt, argv):
    name = opt['name']
    return 'debug_' + name if '--debug' in argv and not name.startswith('debug') else name


def _end_process_group():
    """Tear down torch.distributed after a finished run, every rank together. Without it gloo's worker
    threads outlive the interpreter and a rank that exits first can abort ('terminate called without
    an active exception', pytorch#190489), turning a finished torchrun into exit 1."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_pipeline(kind: str) -> None:
    """Run basicsr's train or test pipeline with the project registered; ``kind`` is 'train' or 'test'."""
    argv = sys.argv[1:]
    if '-h' in argv or '--help' in argv:
        print(USAGE[kind])
        sys.exit(0)
    prog = f'sr_kd/{kind}.py'
    from sr_kd.errors import SRKDError, end_like_ctrl_c_on_sigterm, exit_on_user_error, interrupted

    end_like_ctrl_c_on_sigterm()
    with exit_on_user_error(prog):
        import sr_kd
        sr_kd.load()  # repairs + registries, before basicsr's pipelines are imported
        from sr_kd import own_run_behaviour as own
        from sr_kd.options import precheck_argv

        own.apply()
        opt = precheck_argv(argv, is_train=kind == 'train')
        own.drop_false_warnings(opt)
        root, name = root_path(), _run_name(opt, argv)
        if os.environ.get('RANK', '0') == '0':
            own.lock_experiment(root, 'experiments' if kind == 'train' else 'results', name)
        if kind == 'train':
            from basicsr.train import train_pipeline as pipeline
        else:
            from basicsr.test import test_pipeline as pipeline
        try:
            pipeline(root)
            _end_process_group()
        except (SRKDError, KeyboardInterrupt, OSError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            left = [own.tidy_after_failure()]
            if kind == 'train':
                left.append(own.resume_hint(root, name, argv))
            left = '; '.join(filter(None, left))
            if isinstance(e, KeyboardInterrupt):
                word, status = interrupted(e)
                print(f'{prog}: {word}{"; " + left if left else ""}', file=sys.stderr)
                sys.exit(status)
            what = str(e) if isinstance(e, SRKDError) else f'disk full: {e.strerror}: {e.filename or ""}'
            raise SRKDError(f'{what}{". Left: " + left if left else ""}') from e
