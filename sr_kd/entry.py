"""Shared start-up of ``sr_kd/train.py`` and ``sr_kd/test.py``: import the project (compat + registries),
check the option file before anything runs, and turn user errors into one line and exit status 2."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def root_path():
    """Where experiments/, results/ and tb_logger/ go: $SR_KD_ROOT if set (tests, shared clusters),
    else the repository, as with BasicSR's own scripts."""
    return os.path.abspath(os.environ.get('SR_KD_ROOT') or ROOT)


def run_pipeline(kind):
    """Run basicsr's train or test pipeline with the project registered; ``kind`` is 'train' or 'test'."""
    from sr_kd.errors import SRKDError, exit_on_user_error

    with exit_on_user_error(f'sr_kd/{kind}.py'):
        import sr_kd  # noqa: F401 - compat + registries, before basicsr's pipelines are imported
        from sr_kd import compat
        from sr_kd.options import precheck_argv

        precheck_argv(sys.argv[1:], is_train=kind == 'train')
        if kind == 'train':
            from basicsr.train import train_pipeline as pipeline
        else:
            from basicsr.test import test_pipeline as pipeline
        try:
            pipeline(root_path())
        except SRKDError:
            compat.undo_new_dirs()  # failed before its first checkpoint: leave no half-made experiment
            raise
