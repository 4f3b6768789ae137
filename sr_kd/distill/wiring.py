"""How a student is joined to its teacher for distillation: the pairs (``auto`` resolved), the feature taps
on both networks, the terms set up for the tapped shapes, and every term run once on a probe batch.

SRKDModel wires its networks with this for training, and the start-up check (``sr_kd.options``) wires
fresh copies in memory on the CPU, so a pair naming a missing module, pairs of different spatial sizes, a
bad term option or a term the offline teacher cannot feed fails before the experiment folder exists.
"""
import copy
from dataclasses import dataclass

import torch

from sr_kd.distill import auto_pairs, teacher_cache
from sr_kd.distill.head import DistillTerms, build_terms
from sr_kd.distill.taps import FeatureTaps
from sr_kd.distill.teacher import teacher_mode
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs
from sr_kd.rules import distill_pairs, train_has_gt


@dataclass
class Wiring:
    """The taps on each network and the distillation terms, set up for the shapes the probe found."""
    taps_s: FeatureTaps
    taps_t: FeatureTaps
    terms: DistillTerms
    probe: DistillInputs


def wire(opt: dict, student: torch.nn.Module, teacher: torch.nn.Module, device: torch.device) -> Wiring:
    """Join ``student`` (bare, trainable) and ``teacher`` (frozen) as ``opt`` says; ``opt``'s ``pairs: auto`` is
    replaced by the chosen pairs. SRKDError with one line for anything that would fail at iteration 1."""
    auto_pairs.resolve(opt, student, teacher)
    s_names, t_names = distill_pairs(opt)
    names, terms = build_terms(opt['train'].get('distill_opts'))
    head = DistillTerms(names, terms)
    if teacher_mode(opt) == 'offline':
        teacher_cache.offline_specs(names, terms)  # every term can be fed from the cache
    taps_s = FeatureTaps(student, s_names, head.needs_inputs, 'student')
    taps_t = FeatureTaps(teacher, t_names, head.needs_inputs, 'teacher')
    batch = opt['datasets'].get('train', {}).get('batch_size_per_gpu', 1)
    probe = _probe(opt, student, teacher, taps_s, taps_t, batch, device)
    for (sn, tn), fs, ft in zip(zip(s_names, t_names), probe.feats_s, probe.feats_t):
        if fs.dim() != 4 or ft.dim() != 4:
            raise SRKDError(f'distill.pairs [{sn}, {tn}]: taps must give N x C x H x W features, '
                            f'got {tuple(fs.shape)}, {tuple(ft.shape)}')
        if fs.shape[2:] != ft.shape[2:]:
            raise SRKDError(f'distill.pairs [{sn}, {tn}]: spatial sizes differ (student {fs.shape[2]}x'
                            f'{fs.shape[3]}, teacher {ft.shape[2]}x{ft.shape[3]} on a {probe.lq.shape[-1]}px input)')
    head.setup([tuple(f.shape[1:]) for f in probe.feats_s], [tuple(f.shape[1:]) for f in probe.feats_t], batch)
    head = head.to(device)
    _dry_run(head, student, probe, device)
    return Wiring(taps_s, taps_t, head, probe)


def _probe(opt, student, teacher, taps_s, taps_t, batch, device):
    """Both networks once on a random LR batch (own generator: the global RNGs stay untouched); that step's
    DistillInputs."""
    size = max(opt['datasets'].get('train', {}).get('gt_size', 64) // opt.get('scale', 1), 8)
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(batch, opt['network_g'].get('num_in_ch', 3), size, size, generator=gen).to(device)
    taps_s.clear()
    taps_t.clear()
    sr_s = student(lq)
    with torch.no_grad():
        sr_t = teacher(lq)
    # an HR batch as training gives one (terms that compare with it, e.g. a gated output term, are checked
    # too); a dataset without ground truth has none, so such a term fails here as it would at iteration 1
    gt = torch.rand(sr_t.shape, generator=gen).to(device) if train_has_gt(opt) else None
    d = DistillInputs(feats_s=list(taps_s.outputs), feats_t=list(taps_t.outputs), sr_s=sr_s, sr_t=sr_t, lq=lq, gt=gt,
                      inputs_s=list(taps_s.inputs), inputs_t=list(taps_t.inputs), student=student, teacher=teacher)
    taps_s.clear()
    taps_t.clear()
    return d


def _dry_run(head, student, probe, device):
    """Each term once on the probe batch, so a bad term option fails now in one line instead of at the first
    iteration with a traceback. Buffers (memory banks, BN statistics) and RNGs are restored."""
    if not head.names:
        return
    saved = [copy.deepcopy(m.state_dict()) for m in (head, student)]
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        for name, term in zip(head.names, head.terms):
            try:
                val = term(probe)
            except SRKDError as e:
                raise SRKDError(f'l_{name} ({type(term).__name__}): {e}') from e
            except (TypeError, ValueError, RuntimeError, IndexError) as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise SRKDError(f'l_{name} ({type(term).__name__}) fails on a probe batch: {msg}') from e
            if not torch.is_tensor(val) or val.numel() != 1:
                raise SRKDError(f'l_{name} ({type(term).__name__}) must return one number, not {val!r:.60}')
    for module, state in zip((head, student), saved):
        module.load_state_dict(state)
