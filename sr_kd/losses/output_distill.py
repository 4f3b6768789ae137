"""Output distillation: the student's SR image follows the teacher's (the SR analog of Hinton's KD,
where the teacher's output plays the soft target; no temperature, since SR outputs are not logits)."""
import torch
import torch.nn.functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs, DistillLoss, Number

_CRITERIA = {'l1': F.l1_loss, 'mse': F.mse_loss,
             'charbonnier': lambda a, b: ((a - b).pow(2) + 1e-6).sqrt().mean()}


@LOSS_REGISTRY.register()
class OutputDistillLoss(DistillLoss):
    """Pixel loss between student SR and teacher SR (criterion: l1, mse or charbonnier).

    ``gate: teacher_closer`` keeps only the pixels where the teacher is closer to the HR image than the
    student (per value, decided without gradient), so the student is never pulled towards the teacher's
    errors once it has passed it there: the SR analog of Chen et al.'s teacher-bounded regression
    (NeurIPS 2017), which penalises the student only where it is worse than the teacher. Needs the HR batch.

    ``crop_border`` leaves that many output pixels of each edge of a training crop out of the comparison.
    Read from the offline cache, the teacher's output there depends on pixels outside the crop, which the
    student never sees: measured on realesr-animevideov3 (x4, LR crops of 32), the cached and the on-crop
    outputs differ by 30 / 34 / 37 / 40 dB PSNR in the outer four LR pixel rows and agree to 50+ dB from
    the eighth inwards, a target the student cannot predict there (docs/distill.md).

    Args:
        criterion: the distance between the student's and the teacher's SR images: l1, mse or charbonnier.
        gate: none, or teacher_closer: only where the teacher is closer to the HR than the student.
        crop_border: output pixels of each edge of the crop not compared (0: all).

    Example::

        - {type: OutputDistillLoss, name: out, criterion: l1, loss_weight: 0.5}
    """

    uses_features = False
    offline_maps = ()  # the teacher's SR output only: runs from the offline cache
    GATES = ('none', 'teacher_closer')

    def __init__(self, criterion: str = 'l1', loss_weight: Number = 1.0, gate: str = 'none', crop_border: Number = 0):
        super().__init__(loss_weight)
        if not isinstance(crop_border, int) or crop_border < 0:
            raise SRKDError(f'OutputDistillLoss: crop_border must be a whole number >= 0, not {crop_border!r}')
        self.crop_border = crop_border
        if criterion not in _CRITERIA:
            raise SRKDError(f'OutputDistillLoss: criterion must be one of {", ".join(_CRITERIA)}, not {criterion!r}')
        if gate not in self.GATES:
            raise SRKDError(f'OutputDistillLoss: gate must be one of {", ".join(self.GATES)}, not {gate!r}')
        self.fn, self.gate = _CRITERIA[criterion], gate

    def compute(self, d: DistillInputs) -> torch.Tensor:
        s, t = d.sr_s.float(), d.sr_t.float()
        b = self.crop_border
        if b:
            if min(s.shape[-2:]) <= 2 * b:
                raise SRKDError(f'OutputDistillLoss: crop_border {b} leaves nothing of a {s.shape[-2]}x{s.shape[-1]} '
                                'crop; lower it or raise gt_size')
            s, t = s[..., b:-b, b:-b], t[..., b:-b, b:-b]
        if self.gate == 'teacher_closer':
            if d.gt is None:
                raise SRKDError('OutputDistillLoss gate: teacher_closer needs HR images (gt); this dataset has none')
            gt = d.gt.float()
            gt = gt[..., b:-b, b:-b] if b else gt
            keep = ((t - gt).abs() < (s.detach() - gt).abs()).to(s.dtype)
            # dropped values compare 0 with 0: no gradient, and no loss but charbonnier's constant floor
            s, t = s * keep, t * keep
        return self.fn(s, t)
