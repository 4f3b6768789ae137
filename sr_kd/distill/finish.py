"""The end of ``sr-kd distill``: the best student as ``student.safetensors`` (spandrel loads it as it is) and
``student.onnx``, its speed measured side by side with the teacher's, ``summary.json`` with the table it
prints, and ``report.png`` (teacher | student | difference on held-out crops, PSNR to the teacher against
training minutes)."""
import json
import os

import numpy as np
import torch

from sr_kd.atomic import atomic_savefig, atomic_write_text
from sr_kd.distill import job

SPEED_IMAGES = 5  # held-out images timed whole for the summary's speed-up (one image varied 3.8-4.8x under load)


def finish(out: str, plan: dict, onnx: bool = True) -> dict:
    from sr_kd.archs.loading import load_model
    from sr_kd.distill.students import Timed, forward_seconds, parameters
    from sr_kd.export import export_onnx, export_safetensors

    best = job.best_checkpoint(out)
    student, s_info = load_model(best)
    export_safetensors(student, os.path.join(out, 'student.safetensors'))
    if onnx:
        export_onnx(student, s_info, os.path.join(out, 'student.onnx'))
    device = plan['device']  # timed where it was chosen, as upscale runs it there
    student = student.to(device)
    teacher, t_info = load_model(plan['teacher'], device=device)
    precision = plan['precision']
    images = plan['held_out'][:SPEED_IMAGES]
    t_sec = s_sec = 0.0
    for path in images:  # side by side, image by image, so a change of load hits both
        x = job.read_input(path, t_info.scale, plan['hr']).to(device)
        t_sec += forward_seconds(teacher, t_info, x, precision)
        s_sec += forward_seconds(student, s_info, x, precision)
    threads = torch.get_num_threads()
    speed = {'teacher_ms': t_sec * 1000 / len(images), 'student_ms': s_sec * 1000 / len(images),
             'speedup': t_sec / s_sec, 'image': f'{len(images)} held-out images',
             'precision': f'eager {precision}, {threads} thread{"s" * (threads != 1)}',
             'student_params': parameters(student, s_info), 'teacher_params': parameters(teacher, t_info)}
    last = job.val_rows(out)[-1]  # the last validation: the training time of the whole run
    rows = [Timed(**r) for r in plan['candidates']]
    summary = job.summary(out, rows, plan['student'], speed, last)
    summary['recipe'] = plan['recipe']
    atomic_write_text(os.path.join(out, 'summary.json'), json.dumps(summary, indent=1) + '\n')
    picture(out, teacher.cpu(), student.cpu(), plan, t_info.scale)
    print(job.table(summary))
    print(f'wrote {out}/student.safetensors' + (f', {out}/student.onnx' if onnx else '')
          + f', {out}/report.png, {out}/summary.json')
    return summary


def _crop(img, size):
    h, w = img.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top:top + size, left:left + size]


def picture(out: str, teacher: torch.nn.Module, student: torch.nn.Module, plan: dict, scale: int, crops: int = 3,
            size: int = 192) -> None:
    """report.png: a row per held-out image (teacher | student | |difference| x4) and the curve."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = job.val_rows(out)
    first = rows[0]['dataset'] if rows else None
    curve = [r for r in rows if r['dataset'] == first]
    paths = plan['held_out'][:crops]
    fig = plt.figure(figsize=(12, 4 * (len(paths) + 1)))
    ax = fig.add_subplot(len(paths) + 1, 1, 1)
    if curve:
        minutes = [r.get('train_seconds', 0) / 60 for r in curve]
        ax.plot(minutes, [r['student']['psnr'] for r in curve], 'o-', color='#1f77b4', label='student')
        ax.axhline(curve[0]['bicubic']['psnr'], color='#888888', ls='--', label='bicubic')
        ax.set_xlabel('training minutes')
        ax.set_ylabel('PSNR (dB) to ' + ('HR' if curve[0].get('against') == 'HR' else 'the teacher'))
        ax.legend()
        ax.grid(alpha=0.3)
    ax.set_title(f'{plan["student"]} distilled from {os.path.basename(plan["teacher"])} ({plan["recipe"]})')
    for i, path in enumerate(paths):
        x = job.read_input(path, scale, plan['hr'])
        with torch.inference_mode():
            t = teacher(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
            s = student(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        diff = np.clip(np.abs(t - s) * 4, 0, 1)
        psnr = -10 * np.log10(max(float(np.mean((np.round(t * 255) - np.round(s * 255)) ** 2)) / 255 ** 2, 1e-12))
        for j, (img, label) in enumerate(((t, 'teacher'), (s, f'student ({psnr:.2f} dB to the teacher)'),
                                          (diff, '|teacher - student| x4'))):
            a = fig.add_subplot(len(paths) + 1, 3, 3 * (i + 1) + j + 1)
            a.imshow(_crop(img, size), interpolation='nearest')
            a.set_title(f'{os.path.basename(path)}: {label}' if j == 0 else label, fontsize=9)
            a.axis('off')
    atomic_savefig(fig, os.path.join(out, 'report.png'), dpi=80, format='png')
