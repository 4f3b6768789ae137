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
    """Pixel loss between student SR and teacher SR (criterion: l1, mse or charbonnier)."""

    uses_features = False
    offline_maps = ()  # the teacher's SR output only: runs from the offline cache

    def __init__(self, criterion='l1', loss_weight=1.0):
        super().__init__(loss_weight)
        if criterion not in _CRITERIA:
            raise SRKDError(f'OutputDistillLoss: criterion must be one of {", ".join(_CRITERIA)}, not {criterion!r}')
        self.fn = _CRITERIA[criterion]

    def compute(self, d):
        return self.fn(d.sr_s.float(), d.sr_t.float())
