"""How close is the offline teacher's target to the online one? Prints, for random training crops:

  crop vs whole image  the teacher's output on the LR crop against the same window of its output on the
                       whole LR image (what the cache stores): PSNR over the window, mean and worst, and
                       without a border of 4 LR pixels (where the crop lacks the context the whole image has);
  equivariance         teacher(flip/rot90(crop)) turned back, against teacher(crop): how much a cached
                       target turned with the crop differs from the teacher run on the turned crop; and on
                       each whole image, the worst of the 7 turns (``teacher_cache.flip_psnr``, 8-bit).

    python -m scripts.measure_teacher_cache [--crops 200 --lq 24 --images 20 --seed 0]
        [--data ../shared/train --teacher ../shared/pretrained/IMDN_x4.pth]
    python -m scripts.measure_teacher_cache --plain --lq 32 \
        --teacher ../shared/pretrained/realesr-animevideov3.pth     # any weights file; images are the inputs

The teacher runs in fp32 unless ``--bf16`` (what ``teacher_precision: auto`` picks on a CPU with bf16).
"""
import argparse
import math
import os
import random
import sys
from typing import Optional, Sequence

import numpy as np
import torch

from scripts.study_core import SHARED


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=os.path.join(SHARED, 'train'))
    p.add_argument('--teacher', default=os.path.join(SHARED, 'pretrained', 'IMDN_x4.pth'))
    p.add_argument('--crops', type=int, default=200)
    p.add_argument('--images', type=int, default=20, help='random training images the crops come from')
    p.add_argument('--lq', type=int, default=24, help='LR crop size (HR crop / 4)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--plain', action='store_true', help='the images are the inputs (no ground truth, as sr-kd '
                   'distill): no bicubic LR')
    p.add_argument('--bf16', action='store_true', help='run the teacher in bf16')
    args = p.parse_args(argv)
    for path in (args.data, args.teacher):
        if not os.path.exists(path):
            sys.exit(f'measure_teacher_cache: error: {path} not found')

    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from sr_kd.archs.loading import load_model
    from sr_kd.data.hr_dataset import to_tensor
    from sr_kd.data.image_source import list_hr_images
    from sr_kd.distill.teacher import run_teacher
    from sr_kd.distill.teacher_cache import _augment, flip_psnr
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.ops.matlab_resize import bicubic_lr

    torch.set_num_threads(1)
    net, info = load_model(args.teacher)
    dtype = torch.bfloat16 if args.bf16 else None
    s = info.scale
    rng = random.Random(args.seed)
    paths = rng.sample(list_hr_images(args.data), args.images)
    whole, turned_whole = {}, []
    for path in paths:
        img = read_rgb_uint8(path)
        img = img[:img.shape[0] - img.shape[0] % s, :img.shape[1] - img.shape[1] % s]
        lr = img if args.plain else bicubic_lr(img, s)
        x = to_tensor(lr)[None]
        whole[path] = (lr, run_teacher(net, x, dtype)[0])
        turned_whole.append(flip_psnr(lambda t: run_teacher(net, t, dtype), x))
    full, inner, equi = [], [], []
    n, b = args.lq, 4
    for _ in range(args.crops):
        path = rng.choice(paths)
        lr, out = whole[path]
        top, left = rng.randint(0, lr.shape[0] - n), rng.randint(0, lr.shape[1] - n)
        x = to_tensor(lr[top:top + n, left:left + n])[None]  # the bicubic LR of a window is its window
        crop_out = run_teacher(net, x, dtype)[0]
        window = out[:, top * s:(top + n) * s, left * s:(left + n) * s]
        full.append(psnr(crop_out, window))
        inner.append(psnr(crop_out[:, b * s:-b * s, b * s:-b * s], window[:, b * s:-b * s, b * s:-b * s]))
        flips = [rng.random() < 0.5 for _ in range(3)]
        if not any(flips):
            flips[rng.randrange(3)] = True
        turned = run_teacher(net, _augment(x, *flips), dtype)[0]
        equi.append(psnr(_augment(crop_out, *flips), turned))
    print(f'teacher {os.path.basename(args.teacher)} ({info.label}), {args.crops} LR crops of {n}x{n} from '
          f'{args.images} images of {args.data} ({"the images" if args.plain else "bicubic LR"}), seed {args.seed}; '
          f'PSNR on RGB in [0, 1], {"bf16" if args.bf16 else "fp32"}')
    for label, vals in (('crop vs whole image, whole window', full),
                        (f'crop vs whole image, {b}-LR-pixel border left out', inner),
                        ('flip/rot90 equivariance, crops', equi),
                        ('flip/rot90 equivariance, whole images (worst turn, 8-bit)', turned_whole)):
        print(f'{label:<50} mean {np.mean(vals):6.2f} dB   median {np.median(vals):6.2f}   worst {min(vals):6.2f}')


if __name__ == '__main__':
    main()
