"""The fixed rows of a validation table beside the student's: bicubic (MATLAB) and the teacher, measured
against the set's HR; on a set without ground truth, bicubic measured against the teacher's output."""
from typing import TYPE_CHECKING

import numpy as np
import torch

from basicsr.metrics import calculate_metric
from basicsr.utils import tensor2img

from sr_kd.ops.matlab_resize import imresize

if TYPE_CHECKING:
    from sr_kd.distill.teacher import Teacher


def reference_metrics(dataloader: torch.utils.data.DataLoader, metric_opts: dict, teacher: 'Teacher',
                      device: torch.device) -> dict:
    """{'bicubic': {metric: mean}, 'teacher': {...}} over ``dataloader``; no 'teacher' row without ground truth
    (the teacher is then what is measured against). ``teacher``: the run's ``Teacher``."""
    sums, n = {}, 0
    for data in dataloader:
        lq = data['lq'].to(device)
        if 'gt' in data:
            gt = tensor2img([data['gt']])
            with torch.no_grad():
                others = {'teacher': tensor2img([teacher.net(lq).float().cpu()])}
        else:
            gt, others = tensor2img([teacher.image_target(data['lq_path'][0], lq).cpu()]), {}
        lq_u8 = tensor2img([data['lq']], rgb2bgr=False)
        bic = imresize(lq_u8, output_shape=gt.shape[:2])[..., ::-1]
        for who, img in (('bicubic', np.ascontiguousarray(bic)), *others.items()):
            for m, mopt in metric_opts.items():
                sums.setdefault(who, {}).setdefault(m, 0.0)
                sums[who][m] += calculate_metric({'img': img, 'img2': gt}, mopt)
        n += 1
    return {who: {m: v / max(n, 1) for m, v in vals.items()} for who, vals in sums.items()}
