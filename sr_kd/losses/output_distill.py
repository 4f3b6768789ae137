"""Output distillation: the student's SR image follows the teacher's (the SR analog of Hinton's KD,
where the teacher's output plays the soft target; no temperature, since SR outputs are not logits)."""
import torch.nn.functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillLoss

_CRITERIA = {'l1': F.l1_loss, 'mse': F.mse_loss,
             'charbonnier': lambda a, b: ((a - b).pow(2) + 1e-6).sqrt().mean()}


@LOSS_REGISTRY.register()
class OutputDistillLoss(DistillLoss):
    """Pixel loss between student SR and teacher SR (criterion: l1, mse or charbonnier).

    ``gate: teacher_closer`` keeps only the pixels where the teacher is closer to the HR image than the
    student (per value, decided without gradient), so the student is never pulled towards the teacher's
    errors once it has passed it there: the SR analog of Chen et al.'s teacher-bounded regression
    (NeurIPS 2017), which penalises the student only where it is worse than the teacher. Needs the HR batch.

    Args:
        criterion: the distance between the student's and the teacher's SR images: l1, mse or charbonnier.
        gate: none, or teacher_closer: only where the teacher is closer to the HR than the student.

    Example (an item of train.distill_opts; the weight as calibrated in docs/zoo.md where it has one)::

        - {type: OutputDistillLoss, name: out, criterion: l1, loss_weight: 0.5}
    """

    uses_features = False
    offline_maps = ()  # the teacher's SR output only: runs from the offline cache
    GATES = ('none', 'teacher_closer')

    def __init__(self, criterion='l1', loss_weight=1.0, gate='none'):
        super().__init__(loss_weight)
        if criterion not in _CRITERIA:
            raise SRKDError(f'OutputDistillLoss: criterion must be one of {", ".join(_CRITERIA)}, not {criterion!r}')
        if gate not in self.GATES:
            raise SRKDError(f'OutputDistillLoss: gate must be one of {", ".join(self.GATES)}, not {gate!r}')
        self.fn, self.gate = _CRITERIA[criterion], gate

    def compute(self, d):
        s, t = d.sr_s.float(), d.sr_t.float()
        if self.gate == 'teacher_closer':
            if d.gt is None:
                raise SRKDError('OutputDistillLoss gate: teacher_closer needs HR images (gt); this dataset has none')
            gt = d.gt.float()
            keep = ((t - gt).abs() < (s.detach() - gt).abs()).to(s.dtype)
            # dropped values compare 0 with 0: no gradient, and no loss but charbonnier's constant floor
            s, t = s * keep, t * keep
        return self.fn(s, t)
