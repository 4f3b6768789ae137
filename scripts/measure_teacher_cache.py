"""How close is the offline teacher's target to the online one? Prints, for random training crops:

  crop vs whole image  the teacher's output on the LR crop against the same window of its output on the
                       whole LR image (what the cache stores): PSNR over the window, mean and worst, and
                       without a border of 4 LR pixels (where the crop lacks the context the whole image has);
  equivariance         teacher(flip/rot90(crop)) turned back, against teacher(crop): how much a cached
                       target turned with the crop differs from the teacher run on the turned crop.

    python -m scripts.measure_teacher_cache [--crops 200 --lq 24 --images 20 --seed 0]
        [--data ../shared/train --teacher ../shared/pretrained/IMDN_x4.pth]
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
    args = p.parse_args(argv)
    for path in (args.data, args.teacher):
        if not os.path.exists(path):
            sys.exit(f'measure_teacher_cache: error: {path} not found')

    import sr_kd
    sr_kd.load()  # compat + registries before basicsr
    from sr_kd.archs.imdn_arch import IMDN
    from sr_kd.checkpoint import extract_state_dict, load_checkpoint
    from sr_kd.data.hr_dataset import lr_crop, to_tensor
    from sr_kd.data.image_source import list_hr_images
    from sr_kd.image_io import read_rgb_uint8
    from sr_kd.distill.teacher import run_teacher
    from sr_kd.distill.teacher_cache import _augment
    from sr_kd.ops.matlab_resize import bicubic_lr

    torch.set_num_threads(1)
    net = IMDN(num_feat=64, num_modules=6, upscale=4)
    net.load_state_dict(extract_state_dict(load_checkpoint(args.teacher), None))
    net.eval()
    rng = random.Random(args.seed)
    paths = rng.sample(list_hr_images(args.data), args.images)
    whole = {}
    for path in paths:
        hr = read_rgb_uint8(path)
        hr = hr[:hr.shape[0] - hr.shape[0] % 4, :hr.shape[1] - hr.shape[1] % 4]
        whole[path] = (hr, run_teacher(net, to_tensor(bicubic_lr(hr, 4))[None], None)[0])
    full, inner, equi = [], [], []
    n, b = args.lq, 4
    for _ in range(args.crops):
        path = rng.choice(paths)
        hr, out = whole[path]
        top, left = rng.randint(0, hr.shape[0] // 4 - n), rng.randint(0, hr.shape[1] // 4 - n)
        lq, _ = lr_crop(hr, 4, top, left, n)
        x = to_tensor(lq)[None]
        crop_out = run_teacher(net, x, None)[0]
        window = out[:, top * 4:(top + n) * 4, left * 4:(left + n) * 4]
        full.append(psnr(crop_out, window))
        inner.append(psnr(crop_out[:, b * 4:-b * 4, b * 4:-b * 4], window[:, b * 4:-b * 4, b * 4:-b * 4]))
        flips = [rng.random() < 0.5 for _ in range(3)]
        if not any(flips):
            flips[rng.randrange(3)] = True
        turned = run_teacher(net, _augment(x, *flips), None)[0]
        equi.append(psnr(_augment(crop_out, *flips), turned))
    print(f'teacher {os.path.basename(args.teacher)}, {args.crops} LR crops of {n}x{n} from {args.images} images of '
          f'{args.data}, seed {args.seed}; PSNR on RGB in [0, 1], fp32')
    for label, vals in (('crop vs whole image, whole window', full),
                        (f'crop vs whole image, {b}-LR-pixel border left out', inner),
                        ('flip/rot90 equivariance', equi)):
        print(f'{label:<50} mean {np.mean(vals):6.2f} dB   median {np.median(vals):6.2f}   worst {min(vals):6.2f}')


if __name__ == '__main__':
    main()
