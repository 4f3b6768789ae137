"""The parts of ``sr-kd distill`` between the command line and training: the held-out split, the option
file it writes (trained by ``sr_kd/train.py``, so a researcher can edit and re-run it), the time budget
turned into iterations, and the results gathered at the end.
"""
import json
import math
import os
import random
import time
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch

if TYPE_CHECKING:
    from sr_kd.distill.students import Timed

from sr_kd.errors import SRKDError

RUN = 'student'              # the experiment's name inside OUT/experiments
VAL_SHARE, VAL_MIN = 0.1, 3  # held-out split: 10% of the images, at least 3
BATCH = 8
VALIDATIONS = 10             # validations per run (and checkpoints)


def split(paths: List[str], seed: int = 0) -> Tuple[List[str], List[str]]:
    """(training names, held-out names): image stems, the held-out ones 10% (at least 3) drawn with ``seed``."""
    names = sorted({os.path.splitext(os.path.basename(p))[0] for p in paths})
    n_val = max(VAL_MIN, round(VAL_SHARE * len(names)))
    if len(names) < n_val + 1:
        raise SRKDError(f'{len(names)} images are too few: {n_val} are held out to validate and at least one '
                        'more is needed to train')
    held = sorted(random.Random(seed).sample(names, n_val))
    return [n for n in names if n not in held], held


def read_input(path: str, scale: int, hr: bool) -> torch.Tensor:
    """The student's input for one whole image of the run (1 x 3 x H x W in [0, 1]), as its datasets make it:
    the image itself, or with ``hr`` its bicubic LR."""
    from sr_kd.data.hr_dataset import HROnlyDataset, to_tensor
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.data.plain_dataset import PlainImageDataset
    dataset = HROnlyDataset if hr else PlainImageDataset
    return to_tensor(dataset.whole_input(read_rgb_uint8(path), scale))[None]


def step_seconds(student_opt: dict, teacher: torch.nn.Module, lq_size: int, online: bool, device: str, steps: int = 12) -> float:
    """Seconds of one training step of this student (forward, L1, backward, Adam on a batch of ``BATCH``
    random ``lq_size`` crops), plus one teacher forward on the batch when it runs online; median of ``steps``
    after two warm-up steps. Turns a time budget into iterations."""
    from basicsr.archs import build_network

    from sr_kd.distill.teacher import run_teacher
    from sr_kd.hardware import bf16_is_native
    net = build_network(dict(student_opt)).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 3, lq_size, lq_size, generator=gen).to(device)
    dtype = torch.bfloat16 if bf16_is_native(torch.device(device)) else None
    # one thread: CPU time, the step's compute even on a loaded machine; more threads: wall time
    cuda = torch.device(device).type == 'cuda'
    clock = time.process_time if torch.get_num_threads() == 1 and not cuda else time.perf_counter
    times = []
    for i in range(steps + 2):
        t0 = clock()
        target = run_teacher(teacher, x, dtype) if online else None
        out = net(x)
        loss = (out - (target if target is not None else out.detach() * 0.5)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= 2:
            times.append(clock() - t0)
    times.sort()
    return times[len(times) // 2]


DATA_OVERHEAD = 1.05  # data loading and cache reads beside the measured step (docs/distill.md)


def iterations_for(minutes: float, seconds_per_step: float) -> int:
    """Iterations of a budget, a multiple of VALIDATIONS (so the last checkpoint is the end of the run)."""
    n = int(minutes * 60 / (seconds_per_step * DATA_OVERHEAD))
    return max(VALIDATIONS, n - n % VALIDATIONS)


def validation_note(held: int, teacher_seconds: float, student_seconds: float, train_seconds: Optional[float],
                    sample: str) -> Optional[str]:
    """One line when validating the held-out images whole costs much beside the training: the teacher runs on
    each once (its output is kept), the student ``VALIDATIONS`` times, both as timed on ``sample``; the metrics
    and conversions come on top, so it is a floor. 1080p frames took 45-190 s a validation on a CPU, which a
    user should hear before the run, not after."""
    floor = held * (teacher_seconds + VALIDATIONS * student_seconds)
    if floor < max(60.0, 0.25 * (train_seconds or 0.0)):
        return None
    return (f'note: validating the {held} held-out images whole will take at least {floor / 60:.0f} minutes over '
            f'the run (the teacher once, the student {VALIDATIONS} times, as timed above on '
            f'{os.path.basename(sample)}; the metrics on top), beside the training: smaller images validate faster')


def option_file(*, teacher_path: str, scale: int, student_opt: dict, images: str, train_names: List[str],
                val_names: List[str], recipe_sections: dict, lq_size: int, total_iter: int, seed: int,
                hr: bool, device: str, augment: bool = True) -> dict:
    """The complete BasicSR option file of a distillation run."""
    kind = 'HROnlyDataset' if hr else 'PlainImageDataset'
    root_key = 'dataroot_gt' if hr else 'dataroot_lq'
    every = max(1, total_iter // VALIDATIONS)
    train_ds = {'name': 'images', 'type': kind, root_key: images, 'exclude': list(val_names),
                'gt_size': lq_size * scale, 'use_hflip': augment, 'use_rot': augment, 'num_worker_per_gpu': 0,
                'batch_size_per_gpu': BATCH, 'prefetch_mode': None,
                # epochs of about 100 iterations: never fewer samples than a batch, little per-epoch overhead
                'dataset_enlarge_ratio': max(1, math.ceil(100 * BATCH / max(len(train_names), 1)))}
    vals = {}
    if hr:
        vals['val_1'] = {'name': 'held_out_vs_teacher', 'type': kind, root_key: images, 'images': list(val_names),
                         'against': 'teacher'}
        vals['val_2'] = {'name': 'held_out_vs_hr', 'type': kind, root_key: images, 'images': list(val_names)}
    else:
        vals['val'] = {'name': 'held_out', 'type': kind, root_key: images, 'images': list(val_names)}
    metric = {'crop_border': scale, 'test_y_channel': False}
    opt = {
        'name': RUN, 'model_type': 'SRKDModel', 'scale': scale, 'num_gpu': 1 if device.startswith('cuda') else 0,
        'manual_seed': seed,
        'datasets': {'train': train_ds, **vals},
        'network_g': dict(student_opt), 'network_t': {'type': 'auto'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'pretrain_network_t': teacher_path,
                 'param_key_t': None, 'resume_state': None},
        **recipe_sections,
        'val': {'val_freq': every, 'save_img': False, 'keep_best': 'psnr',
                'metrics': {'psnr': {'type': 'calculate_psnr', **metric}, 'ssim': {'type': 'calculate_ssim', **metric}}},
        'logger': {'print_freq': max(1, min(100, every // 5)), 'save_checkpoint_freq': every, 'use_tb_logger': False,
                   'save_safetensors': False},
    }
    if hr:
        opt['train']['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}
    return opt


def experiment(out: str) -> str:
    return os.path.join(out, 'experiments', RUN)


def saved_checkpoint(out: str) -> Optional[str]:
    """The best student by PSNR to the teacher (``net_g_best.pth``), else the latest saved one; None yet."""
    models = os.path.join(experiment(out), 'models')
    return next((os.path.join(models, n) for n in ('net_g_best.pth', 'net_g_latest.pth')
                 if os.path.isfile(os.path.join(models, n))), None)


def best_checkpoint(out: str) -> str:
    """``saved_checkpoint``, which must exist."""
    found = saved_checkpoint(out)
    if found is None:
        raise SRKDError(f'{experiment(out)}/models holds no student checkpoint yet: the run stopped before its '
                        'first validation')
    return found


def val_rows(out: str) -> List[dict]:
    from sr_kd.report import read_jsonl
    return read_jsonl(os.path.join(experiment(out), 'val_metrics.jsonl'))


def best_rows(out: str) -> dict:
    """{dataset: its validation row at the best iteration} (best.json's; the last validation without it)."""
    rows = val_rows(out)
    if not rows:
        raise SRKDError(f'{experiment(out)} has no validation yet: the run stopped before its first one')
    try:
        with open(os.path.join(experiment(out), 'best.json')) as f:
            it = json.load(f)['iter']
    except (OSError, ValueError, KeyError):
        it = rows[-1]['iter']
    return {r['dataset']: r for r in rows if r['iter'] == it}


def summary(out: str, rows_timed: List['Timed'], chosen: str, speed: dict, last: dict) -> dict:
    """What ``summary.json`` holds and the final table prints; ``last`` is the run's last validation row (its
    training time: wall clock and CPU time of the training steps)."""
    best = best_rows(out)
    metrics = {name: {'student': row['student'], **{k: row[k] for k in ('bicubic', 'teacher') if k in row},
                      'against': row.get('against')} for name, row in best.items()}
    it = next(iter(best.values()))['iter']
    return {'student': chosen, 'best_iter': it, 'train_minutes': round(last.get('train_seconds', 0.0) / 60, 2),
            'train_cpu_minutes': round(last.get('train_cpu_seconds', 0.0) / 60, 2),
            'parameters': speed['student_params'], 'teacher_parameters': speed['teacher_params'],
            'speed': speed, 'metrics': metrics,
            'candidates': [{'name': r.name, 'parameters': r.params, 'ms': round(r.seconds * 1000, 2),
                            'speedup': round(r.speedup, 3)} for r in rows_timed]}


def table(s: dict) -> str:
    lines = [f'student {s["student"]}: {s["parameters"]:,} parameters (teacher {s["teacher_parameters"]:,}), '
             f'{s["speed"]["speedup"]:.2f}x faster than the teacher ({s["speed"]["student_ms"]:.0f} vs '
             f'{s["speed"]["teacher_ms"]:.0f} ms an image, over {s["speed"]["image"]}, {s["speed"]["precision"]})',
             f'best at iteration {s["best_iter"]}; {s["train_minutes"]:.1f} minutes of training steps '
             f'({s["train_cpu_minutes"]:.1f} CPU minutes)',
             f'{"held-out images":<28} {"PSNR":>8} {"SSIM":>8}']
    for name, m in s['metrics'].items():
        against = 'HR' if m['against'] == 'HR' else 'the teacher'
        for who in ('student', 'bicubic', 'teacher'):
            if who in m:
                lines.append(f'{who + " to " + against:<28} {m[who]["psnr"]:>8.3f} {m[who]["ssim"]:>8.4f}')
    if any('bicubic' in m and m['student']['psnr'] < m['bicubic']['psnr'] for m in s['metrics'].values()):
        # a plain resize would do better: a user should not ship it unwarned
        lines.append('note: the student is below bicubic on the held-out images: it needs a longer run '
                     '(more --minutes or --iters, in a new -o)')
    return '\n'.join(lines)

