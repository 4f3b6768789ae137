"""Behaviour of sr_kd's own ``train.py`` / ``test.py`` runs; applied by ``sr_kd.entry`` only, never by
``import sr_kd`` (docs/design.md, "The compat rule": these change what a run does, so a plain BasicSR
pipeline that merely imports sr_kd keeps basicsr's behaviour).

- Exact resume: the first epoch after a resume continues the data stream where the checkpoint left it,
  with the RNG states saved in the training state (basicsr restarts the epoch with fresh RNGs).
- Epoch count from the loader's real length (basicsr's ceil() could stop short of total_iter) and a
  refusal of an epoch with no batch (zero iterations reported as success).
- One run per experiment: a lock (``experiments/.NAME.lock``, flock: a killed run's lock frees itself).
- What a failed run leaves: the folders it made are kept with their logs; only empty folders go, and an
  experiment folder left empty gives its place back to the previous run's archived one (``tidy_after_failure``).
"""
import math
import os
from typing import List

# What the first training epoch after a resume must restore (set by load_resume_state, used once by
# the sampler): the RNG states and the position inside the epoch at the time of the checkpoint.
_RESUME = {}

# Folders made by this run, with the older folder basicsr archived to make room (or None).
_NEW_DIRS = []

_applied = False


def _patch_resume():
    import basicsr.train as bt

    from sr_kd.compat_identical import load_resume_state as load_on_device

    def load_resume_state(opt):
        # The teacher is never saved with the student: keep loading it from its own path on resume.
        ignore = opt['path'].get('ignore_resume_networks') or []
        opt['path']['ignore_resume_networks'] = list(ignore) + ['network_t']
        state = load_on_device(opt)
        _RESUME.clear()
        if state is not None and 'rng' in state:
            ds = opt['datasets']['train']
            batch = ds['batch_size_per_gpu'] * (1 if opt['dist'] else max(opt['num_gpu'], 1))
            _RESUME.update(epoch=state['epoch'], iter=state['iter'], batch=batch, rng=state['rng'])
        return state

    bt.load_resume_state = load_resume_state


def _patch_sampler():
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.utils.dist_util import get_dist_info

    from sr_kd.rng import set_rng_state

    original_iter = EnlargedSampler.__iter__

    def __iter__(self):
        indices = list(original_iter(self))
        if _RESUME.get('epoch') != self.epoch:
            return iter(indices)
        pending = dict(_RESUME)
        _RESUME.clear()
        rank, world = get_dist_info()
        if len(pending['rng']) == world:
            set_rng_state(pending['rng'][rank])
        done = pending['iter'] - self.epoch * (self.num_samples // pending['batch'])
        return iter(indices[max(done, 0) * pending['batch']:])

    EnlargedSampler.__iter__ = __iter__


def _patch_epoch_count():
    import basicsr.train as bt

    from sr_kd.errors import SRKDError

    original = bt.create_train_val_dataloader

    def create_train_val_dataloader(opt, logger):
        train_loader, train_sampler, val_loaders, _, total_iters = original(opt, logger)
        if len(train_loader) == 0:
            raise SRKDError(f'datasets.train: a batch of {train_loader.batch_size} is more than the '
                            f'{len(train_loader.sampler)} samples of one epoch per process '
                            '(images x dataset_enlarge_ratio / processes)')
        return train_loader, train_sampler, val_loaders, math.ceil(total_iters / len(train_loader)), total_iters

    bt.create_train_val_dataloader = create_train_val_dataloader


def _patch_exp_dirs():
    """Record the experiment/results/tb_logger folders basicsr makes, under every name basicsr reaches
    mkdir_and_rename by (basicsr.utils.misc, basicsr.utils, basicsr.train)."""
    import basicsr.train as bt
    import basicsr.utils as bu
    from basicsr.utils import misc

    def mkdir_and_rename(path):
        archived = None
        if os.path.exists(path):
            archived = path + '_archived_' + misc.get_time_str()
            print(f'Path already exists. Rename it to {archived}', flush=True)
            os.rename(path, archived)
        os.makedirs(path, exist_ok=True)
        _NEW_DIRS.append((path, archived))

    for module in (misc, bu, bt):
        module.mkdir_and_rename = mkdir_and_rename


def apply() -> None:
    global _applied
    if _applied:
        return
    _patch_resume()
    _patch_sampler()
    _patch_epoch_count()
    _patch_exp_dirs()
    _applied = True


_MULTIPLE_VAL = 'Multiple validation datasets are *only* supported by SRModel.'


def drop_false_warnings(opt: dict) -> None:
    """basicsr's train loop warns that several validation sets are *only* supported by SRModel at every
    validation whatever the model; for an SRModel (SRKDModel is one: sr-kd distill --hr validates against the
    teacher and the HR) it is false, and dropped; for any other model it stays."""
    import logging

    from basicsr.models.sr_model import SRModel
    from basicsr.utils.registry import MODEL_REGISTRY
    try:
        model = MODEL_REGISTRY.get(opt.get('model_type'))
    except KeyError:
        return
    if isinstance(model, type) and issubclass(model, SRModel):
        logging.getLogger('basicsr').addFilter(lambda record: record.getMessage() != _MULTIPLE_VAL)


# ----- one run per experiment ----------------------------------------------------------------------
def lock_experiment(root: str, folder: str, name: str) -> str:
    """Hold ``ROOT/FOLDER/.NAME.lock`` while this process lives, or raise SRKDError naming the process that
    holds it. flock: the kernel frees the lock of a killed run, so a stale file never blocks; the file is
    removed at a normal exit (a lock taken on a file that was just removed is retaken on the new one)."""
    import atexit
    import fcntl

    from sr_kd.errors import SRKDError

    base = os.path.join(root, folder)
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, f'.{name}.lock')
    while True:
        f = open(path, 'a+')
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            f.close()
            raise SRKDError(f'{folder}/{name} is in use by a running {holder}; wait for it to finish, or give '
                            'this run another name') from None
        try:
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()  # the holder removed the file between our open and our lock: lock the new one
    f.seek(0)
    f.truncate()
    f.write(f'run (process {os.getpid()})\n')
    f.flush()

    def release():
        try:
            os.remove(path)
        except OSError:
            pass
        f.close()

    atexit.register(release)
    return path


# ----- what a failed run leaves --------------------------------------------------------------------
def _remove_empty_dirs(path):
    """Remove empty folders under ``path`` (and ``path`` itself when empty); True when ``path`` is gone."""
    for folder, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count(os.sep)):
        try:
            os.rmdir(folder)
        except OSError:
            pass
    return not os.path.exists(path)


def _last_checkpoint(exp):
    states = os.path.join(exp, 'training_states')
    iters = sorted(int(n[:-6]) for n in os.listdir(states) if n.endswith('.state') and n[:-6].isdigit()) \
        if os.path.isdir(states) else []
    return iters[-1] if iters else None


def tidy_after_failure() -> str:
    """After a failed run: remove only empty folders it made, keep everything it wrote (logs always);
    return one sentence saying what is left and where (as typed from the current folder)."""
    from sr_kd.run_paths import shown
    said = []
    while _NEW_DIRS:
        path, archived = _NEW_DIRS.pop()
        rel = shown(path)
        if _remove_empty_dirs(path):
            if archived and os.path.isdir(archived):
                os.rename(archived, path)  # nothing of this run there: the previous run gets its place back
            continue
        entries = sorted(os.listdir(path))
        files = [n for n in entries if os.path.isfile(os.path.join(path, n))]
        files += [f'{n}/ ({sum(len(f) for _, _, f in os.walk(os.path.join(path, n)))} files)' for n in entries
                  if os.path.isdir(os.path.join(path, n))]
        text = f'kept {rel}/ with {", ".join(files)}'
        if archived:
            text += f'; the previous run is in {shown(archived)}/'
        said.append(text)
    return '; '.join(said)


def resume_hint(root: str, name: str, argv: List[str]) -> str:
    """Where a training run can continue from: the last complete checkpoint and the command."""
    last = _last_checkpoint(os.path.join(root, 'experiments', name))
    if last is None:
        return 'no checkpoint was saved'
    from sr_kd.run_paths import train_command
    opt = argv[argv.index('-opt') + 1] if '-opt' in argv[:-1] else 'OPTIONS.yml'
    return f'the last complete checkpoint is iteration {last}: continue with {train_command(opt, "--auto_resume")}'
