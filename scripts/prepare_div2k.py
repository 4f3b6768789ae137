"""Cut DIV2K (or any HR folder) into sub-images for fast training, the classic BasicSR recipe.

    python -m scripts.prepare_div2k datasets/DIV2K/DIV2K_train_HR datasets/DIV2K/DIV2K_train_HR_sub
        [--crop 480 --step 240 --thresh 48] [--lr-scales 2 3 4]

Sub-images of ``--crop`` px every ``--step`` px (the last row/column is shifted to the border; a
remainder under ``--thresh`` is dropped). HROnlyDataset makes the LR on the fly, so LR files are only
needed for PairedImageDataset: ``--lr-scales`` writes them with the MATLAB-exact bicubic next to the
output folder (``<out>_LR/X4/<name>x4.png``).
"""
import argparse
import os
import sys
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from sr_kd.data.image_source import list_hr_images
from sr_kd.errors import exit_on_user_error
from sr_kd.image_io import read_rgb_uint8
from sr_kd.ops.matlab_resize import bicubic_lr


def starts(length: int, crop: int, step: int, thresh: int) -> List[int]:
    """Top-left offsets along one side: every ``step``, plus one flush with the end when worth it."""
    if length <= crop:
        return [0]
    pos = list(range(0, length - crop + 1, step))
    if length - (pos[-1] + crop) > thresh:
        pos.append(length - crop)
    return pos


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--crop', type=int, default=480)
    p.add_argument('--step', type=int, default=240)
    p.add_argument('--thresh', type=int, default=48)
    p.add_argument('--lr-scales', type=int, nargs='*', default=[])
    args = p.parse_args(argv)
    with exit_on_user_error('prepare_div2k'):
        os.makedirs(args.dst, exist_ok=True)
        count = 0
        for path in tqdm(list_hr_images(args.src), unit='img', disable=not sys.stderr.isatty()):
            img = read_rgb_uint8(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            h, w = img.shape[:2]
            k = 0
            for y in starts(h, args.crop, args.step, args.thresh):
                for x in starts(w, args.crop, args.step, args.thresh):
                    k += 1
                    sub = np.ascontiguousarray(img[y:y + args.crop, x:x + args.crop])
                    name = f'{stem}_s{k:03d}'
                    Image.fromarray(sub).save(os.path.join(args.dst, name + '.png'))
                    for s in args.lr_scales:
                        lr_dir = os.path.join(f'{args.dst.rstrip("/")}_LR', f'X{s}')
                        os.makedirs(lr_dir, exist_ok=True)
                        Image.fromarray(bicubic_lr(sub, s)).save(os.path.join(lr_dir, f'{name}x{s}.png'))
                    count += 1
        print(f'{count} sub-images written to {args.dst}')


if __name__ == '__main__':
    main()
