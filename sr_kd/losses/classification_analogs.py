"""SR analogs of the zoo's classification-only entries. What has no analog is said in docs/zoo.md:
KD with temperature is OutputDistillLoss (SR outputs are not logits, so no softmax temperature);
LwM needs Grad-CAM of a class score and BSS adversarial samples across a decision boundary, and an SR
network has neither.
"""
from copy import deepcopy
from typing import Any, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs import build_network
from basicsr.utils.registry import LOSS_REGISTRY

from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs, DistillLoss, Number

_CRITERIA = {'l1': F.l1_loss, 'mse': F.mse_loss}


def input_gradient(net: nn.Module, lq: torch.Tensor, projection: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """d<projection, net(lq)>/d lq: one random row of the input-output Jacobian, without touching .grad."""
    x = lq.detach().float().requires_grad_(True)
    with torch.enable_grad():
        out = net(x).float()
        return torch.autograd.grad((out * projection).sum(), x, create_graph=create_graph)[0]


@LOSS_REGISTRY.register()
class SobolevLoss(DistillLoss):
    """Sobolev training / Jacobian matching (Czarnecki et al., NeurIPS 2017; Srinivas & Fleuret, ICML
    2018), SR analog: the gradient of a random projection of the SR output with respect to the LR input
    (one random row of the Jacobian, drawn anew each step) is L2-normalised per patch for student and
    teacher; squared distance per patch, averaged over the batch. Runs both networks again.

    Args:
        num_projections: random output projections per step (rows of the Jacobian).

    Example::

        - {type: SobolevLoss, name: sobolev, num_projections: 1, loss_weight: 1.0}
    """

    uses_features = False

    def __init__(self, num_projections: Number = 1, loss_weight: Number = 1.0):
        super().__init__(loss_weight)
        if int(num_projections) < 1:
            raise SRKDError(f'SobolevLoss: num_projections must be at least 1, got {num_projections}')
        self.num_projections = int(num_projections)

    def compute(self, d: DistillInputs) -> torch.Tensor:
        teacher = getattr(d, 'teacher', None)
        if d.student is None or teacher is None:
            raise SRKDError('SobolevLoss needs the student and teacher networks in DistillInputs')
        with torch.autocast(device_type=d.lq.device.type, enabled=False):
            loss = 0
            for _ in range(self.num_projections):
                r = torch.randn(d.sr_s.shape, device=d.lq.device)
                g_s = F.normalize(input_gradient(d.student, d.lq, r, create_graph=True).flatten(1), dim=1)
                g_t = F.normalize(input_gradient(teacher, d.lq, r, create_graph=False).flatten(1), dim=1)
                loss = loss + (g_s - g_t).pow(2).sum(dim=1).mean()
            return loss / self.num_projections


@LOSS_REGISTRY.register()
class DMLLoss(DistillLoss):
    """Deep mutual learning (Zhang et al., CVPR 2018), SR analog: a peer student (``network_peer``,
    usually the same as network_g) trains alongside; each follows the other's SR output (L1 in place of
    the KL between class posteriors) and the peer also learns the task against the HR patch (when the
    inputs carry it; the model's probe batch has none). The peer is a child of this term, so the
    optimizer trains it and the checkpoint keeps it. ``loss_weight`` scales both mimicry terms and not
    the peer's task term, so the peers stay symmetric: each learns task + loss_weight x follow-the-other
    (the student's task term is ``pixel_opt``).

    Args:
        network_peer: the peer student, as a network section ({type: ..., ...}; usually network_g).
        criterion: the distance between the two students' outputs: l1 or mse.

    Example::

        - {type: DMLLoss, name: dml, network_peer: {type: IMDN, num_feat: 32, num_modules: 4, upscale: 4}, loss_weight: 0.275}
    """

    uses_features = False

    def __init__(self, network_peer: Any = None, criterion: str = 'l1', loss_weight: Number = 1.0):
        super().__init__(loss_weight)
        if not isinstance(network_peer, dict) or 'type' not in network_peer:
            raise SRKDError('DMLLoss needs network_peer: {type: ..., ...} (the second student, usually network_g)')
        if criterion not in _CRITERIA:
            raise SRKDError(f'DMLLoss: criterion must be one of {", ".join(_CRITERIA)}, not {criterion!r}')
        self.fn = _CRITERIA[criterion]
        self.peer: nn.Module = build_network(deepcopy(network_peer))

    def compute(self, d: DistillInputs) -> Tuple[torch.Tensor, torch.Tensor]:
        sr_p = self.peer(d.lq)  # under the step's autocast, as the student
        with torch.autocast(device_type=d.lq.device.type, enabled=False):
            sr_s, sr_p = d.sr_s.float(), sr_p.float()
            mimicry = self.fn(sr_s, sr_p.detach()) + self.fn(sr_p, sr_s.detach())
            task = self.fn(sr_p, d.gt.float()) if d.gt is not None else sr_p.new_zeros(())
            return mimicry, task
