"""A one-page PNG of a training run, readable at a glance: loss curves per term, validation PSNR of
bicubic / teacher / student over iterations, and crops of validation images (bicubic, student,
teacher, HR) with their PSNR.

Everything comes from the experiment folder: ``losses.jsonl`` and ``val_metrics.jsonl`` (written by
SRKDModel), the option file BasicSR copied there, and the latest student checkpoint. The SR crops are
recomputed from that checkpoint and the teacher the option file names, so a run needs to save no images.
"""
import glob
import os
import re
from typing import List, Optional, Tuple

import numpy as np

from sr_kd.atomic import atomic_savefig
from sr_kd.errors import SRKDError
from sr_kd.jsonl import read_rows

COLUMNS = ('bicubic', 'student', 'teacher', 'HR')
COLORS = {'bicubic': '#888888', 'teacher': '#d62728', 'student': '#1f77b4'}


def read_jsonl(path: str) -> List[dict]:
    """Rows of a JSON-lines log, one per iteration (a resumed run's repeats: the last one wins)."""
    rows = {(row['iter'], row.get('dataset')): row for row in read_rows(path)}
    return sorted(rows.values(), key=lambda r: r['iter'])


def experiment_options(exp_dir: str) -> dict:
    """The option file BasicSR copied into the experiment folder (the one whose name is the folder's)."""
    from sr_kd.options import load_yaml
    files = sorted(glob.glob(os.path.join(exp_dir, '*.yml')), key=os.path.getmtime, reverse=True)
    if not files:
        raise SRKDError(f'{exp_dir} has no option file (*.yml): is it a training experiment folder?')
    opts = [load_yaml(f) for f in files]
    return next((o for o in opts if o.get('name') == os.path.basename(os.path.normpath(exp_dir))), opts[0])


def resolve(path: Optional[str], exp_dir: str) -> Optional[str]:
    """A path from the option file: as written (relative to where training ran), else relative to the
    root that holds experiments/, else to the repository."""
    from sr_kd.run_paths import ROOT
    if path is None or path == 'skimage':
        return path
    path = os.path.expanduser(str(path))
    for base in ('', os.path.dirname(os.path.dirname(os.path.abspath(exp_dir))), ROOT):
        if os.path.exists(os.path.join(base, path)):
            return os.path.join(base, path)
    return path


def latest_student(exp_dir: str) -> Optional[str]:
    """models/net_g_latest.pth, else the highest net_g_<iter>.pth; None if there is none."""
    models = os.path.join(exp_dir, 'models')
    latest = os.path.join(models, 'net_g_latest.pth')
    if os.path.isfile(latest):
        return latest
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(models, 'net_g_*.pth'))
             if (m := re.search(r'net_g_(\d+)\.pth$', p))]
    return max(found)[1] if found else None


def _load_net(net_opt, ckpt, param_key):
    import copy

    from basicsr.archs import build_network

    from sr_kd.checkpoint import check_fits, extract_state_dict, load_checkpoint
    net = build_network(copy.deepcopy(net_opt))
    sd = extract_state_dict(load_checkpoint(ckpt), param_key)
    check_fits(net, sd, True, f'{ckpt} does not fit {net_opt["type"]}')
    net.load_state_dict(sd)
    return net.eval()


def _load_teacher(opt, t_path, device):
    """The teacher of the option file, loaded as training loads it (sr_kd.distill.teacher.Teacher)."""
    from sr_kd.distill.teacher import Teacher
    return Teacher({**opt, 'path': {**opt['path'], 'pretrain_network_t': t_path}}, device).net


def sr_images(opt: dict, exp_dir: str, max_images: int = 3, device: str = 'cpu') -> Tuple[List[dict], str]:
    """[{name, HR, bicubic, student, teacher}] (uint8 RGB, teacher None if its checkpoint is missing) for
    the first images of the first validation set; plus a note on what could not be shown."""
    import torch

    from basicsr.data import build_dataset

    from sr_kd.ops.matlab_resize import imresize
    phase = next((k for k in opt.get('datasets', {}) if str(k).startswith('val')), None)
    student_ckpt = latest_student(exp_dir)
    if phase is None or student_ckpt is None:
        return [], 'no validation set' if phase is None else 'no student checkpoint yet'
    ds_opt = dict(opt['datasets'][phase], phase='val', scale=opt['scale'])
    for key in ('dataroot_gt', 'dataroot_lq'):
        if ds_opt.get(key):
            ds_opt[key] = resolve(ds_opt[key], exp_dir)
    dataset = build_dataset(ds_opt)
    student = _load_net(opt['network_g'], student_ckpt, None).to(device)
    teacher, note = None, ''
    t_path = resolve((opt.get('path') or {}).get('pretrain_network_t'), exp_dir)
    if 'network_t' in opt and t_path and os.path.isfile(t_path):
        teacher = _load_teacher(opt, t_path, torch.device(device))
    elif 'network_t' in opt:
        note = f'teacher checkpoint not found: {t_path}'

    def run(net, lq):
        with torch.no_grad():
            out = net(lq.unsqueeze(0).to(device))[0].clamp(0, 1)
        return (out.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)

    images = []
    for i in range(min(max_images, len(dataset))):
        item = dataset[i]
        t_img = run(teacher, item['lq']) if teacher is not None else None
        if 'gt' in item:
            hr, reference = (item['gt'].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), 'HR'
        elif t_img is not None:  # no ground truth (PlainImageDataset): the teacher is the reference
            hr, reference, t_img = t_img, 'teacher', None
        else:
            return images, 'no ground truth and no teacher to compare with'
        lq = (item['lq'].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        images.append({'name': os.path.splitext(os.path.basename(item['lq_path']))[0], 'HR': hr,
                       'reference': reference, 'bicubic': imresize(lq, output_shape=hr.shape[:2]),
                       'student': run(student, item['lq']), 'teacher': t_img})
    return images, note


def detail_box(hr: np.ndarray, size: int) -> Tuple[Tuple[int, int], int]:
    """(top, left) of the size x size window with the most gradient energy: the crop that shows the most."""
    gray = hr.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = energy.shape
    size = min(size, h, w)
    best, box = -1.0, (0, 0)
    for top in range(0, h - size + 1, max(size // 4, 1)):
        for left in range(0, w - size + 1, max(size // 4, 1)):
            s = integral[top + size, left + size] - integral[top, left + size] - integral[top + size, left] \
                + integral[top, left]
            if s > best:
                best, box = s, (top, left)
    return box, size


def psnr_y(img: np.ndarray, ref: np.ndarray, border: int) -> float:
    """PSNR on the Y channel, as BasicSR's validation computes it (inputs RGB uint8)."""
    from basicsr.metrics import calculate_psnr
    return calculate_psnr(img[..., ::-1], ref[..., ::-1], crop_border=border, test_y_channel=True)


def _plot_losses(ax, rows):
    terms = [k for k in (rows[0] if rows else {}) if k.startswith('l_')]
    if not terms:
        ax.text(0.5, 0.5, 'no losses.jsonl yet', ha='center', va='center', transform=ax.transAxes)
    iters = np.array([r['iter'] for r in rows])
    for term in terms:
        vals = np.array([r.get(term, np.nan) for r in rows], dtype=float)
        line, = ax.plot(iters, vals, lw=0.8, alpha=0.35)
        k = max(len(vals) // 25, 1)  # a moving average carries the trend when the raw curve is noisy
        if k > 1:
            smooth = np.convolve(np.nan_to_num(vals), np.ones(k) / k, mode='valid')
            ax.plot(iters[k - 1:], smooth, color=line.get_color(), lw=1.8, label=f'{term} (avg of {k})')
        else:
            line.set_alpha(1)
            line.set_label(term)
    ax.set_yscale('log')
    ax.set_xlabel('iteration')
    ax.set_title('training losses per term')
    ax.grid(alpha=0.3, which='both')
    if terms:
        ax.legend(fontsize=8)


def _plot_psnr(ax, rows):
    name = rows[0]['dataset'] if rows else None
    rows = [r for r in rows if r.get('dataset') == name and 'psnr' in r.get('student', {})]
    if not rows:
        ax.text(0.5, 0.5, 'no validation PSNR yet', ha='center', va='center', transform=ax.transAxes)
    iters = [r['iter'] for r in rows]
    for who in ('bicubic', 'teacher', 'student'):
        vals = [r[who]['psnr'] for r in rows if who in r]
        if vals:
            ax.plot(iters, vals, marker='o' if who == 'student' else None, ls='-' if who == 'student' else '--',
                    color=COLORS[who], label=f'{who} {vals[-1]:.2f} dB')
    ax.set_xlabel('iteration')
    ax.set_ylabel('PSNR (dB)')
    ax.set_title(f'validation PSNR on {name}' if name else 'validation PSNR')
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8)


def _label(net_opt, opt=None):
    """'IMDN 32x4' for networks with a width and a depth, 'SPAN 48nf', the file's arch for ``type: auto``,
    else the type."""
    if net_opt.get('type') == 'auto':
        name = os.path.basename(str((opt or {}).get('path', {}).get('pretrain_network_t') or 'a weights file'))
        return f'auto ({name})'
    width = net_opt.get('num_feat', net_opt.get('feature_channels', net_opt.get('dim')))
    depth = net_opt.get('num_modules', net_opt.get('num_block', net_opt.get('num_conv', net_opt.get('n_blocks'))))
    if width and depth:
        return f'{net_opt["type"]} {width}x{depth}'
    return f'{net_opt["type"]} {width}nf' if width else net_opt['type']


def make_report(exp_dir: str, out: Optional[str] = None, max_images: int = 3, crop: int = 96,
                device: str = 'cpu') -> str:
    """Write the report PNG (default EXPERIMENT_DIR/report.png) and return its path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if not os.path.isdir(exp_dir):
        raise SRKDError(f'experiment folder not found: {exp_dir}')
    opt = experiment_options(exp_dir)
    losses = read_jsonl(os.path.join(exp_dir, 'losses.jsonl'))
    vals = read_jsonl(os.path.join(exp_dir, 'val_metrics.jsonl'))
    if not losses and not vals and latest_student(exp_dir) is None:
        raise SRKDError(f'{exp_dir} holds no training yet (no losses.jsonl, val_metrics.jsonl or checkpoint): '
                        'nothing to report')
    images, note = sr_images(opt, exp_dir, max_images, device)
    scale = int(opt.get('scale', 1))

    fig = plt.figure(figsize=(12, 3.6 + 2.9 * max(len(images), 1)), dpi=80)
    grid = fig.add_gridspec(1 + max(len(images), 1), 4, height_ratios=[1.25] + [1] * max(len(images), 1))
    _plot_losses(fig.add_subplot(grid[0, :2]), losses)
    _plot_psnr(fig.add_subplot(grid[0, 2:]), vals)
    for row, img in enumerate(images, start=1):
        (top, left), size = detail_box(img['HR'], crop)
        for col, who in enumerate(COLUMNS):
            ax = fig.add_subplot(grid[row, col])
            ax.set_xticks([])
            ax.set_yticks([])
            if img[who] is None:
                what = 'the teacher is the reference' if img['reference'] == 'teacher' else 'no teacher'
                ax.text(0.5, 0.5, what, ha='center', va='center', transform=ax.transAxes)
                continue
            ax.imshow(img[who][top:top + size, left:left + size], interpolation='nearest')
            label = img['reference'] if who == 'HR' else f'{who}  {psnr_y(img[who], img["HR"], scale):.2f} dB'
            ax.set_title(label, fontsize=10, color=COLORS.get(who, 'black'))
            if col == 0:
                ax.set_ylabel(img['name'], fontsize=10)
    if not images:
        ax = fig.add_subplot(grid[1, :])
        ax.axis('off')
        ax.text(0.5, 0.5, f'no crops: {note}', ha='center', va='center', transform=ax.transAxes)
    last = losses[-1]['iter'] if losses else 0
    fig.suptitle(f'{opt["name"]}: {_label(opt["network_g"])} student'
                 + (f' distilled from {_label(opt["network_t"], opt)}' if 'network_t' in opt else '')
                 + f', x{scale}, {last} iterations' + (f'  ({note})' if note and images else '')
                 + (f'\ncrops: the most detailed {crop} px of each validation image; dB: PSNR of the whole image '
                    f'(Y channel, border {scale})' if images else ''), fontsize=11)
    return atomic_savefig(fig, out or os.path.join(exp_dir, 'report.png'))
