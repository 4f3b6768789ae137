"""SRKDModel: BasicSR's SRModel plus a frozen teacher and any number of distillation terms.

One step (docs/design.md, "Data flow"): student forward with taps; teacher forward under no_grad
with taps; task loss + every term; one backward; one optimizer step over student + connectors. The
teacher never enters DDP, the optimizer, EMA or the saved checkpoint; test runs build no teacher.
"""
import json
import math
import os
import time
from collections import OrderedDict
from typing import Any, List, Optional, Union

import torch

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from sr_kd.atomic import atomic_write_text
from sr_kd.distill.teacher import Teacher
from sr_kd.distill.wiring import wire
from sr_kd.errors import SRKDError
from sr_kd.jsonl import append_row, read_rows
from sr_kd.rules import check_skip_share, fade_factor, nonfinite_names, nonfinite_policy, term_fades
from sr_kd.losses.base import DistillInputs
from sr_kd.models.best_student import forget_later_best, keep_if_best
from sr_kd.models.own_validation import OwnValidation
from sr_kd.models.reference_rows import reference_metrics


AGAINST = {'HR': 'HR', 'teacher': 'the teacher'}  # what a validation row was measured against, in words


def _drop_after(path, last_iter):
    """Keep only the JSON lines of ``path`` logged at or before ``last_iter``."""
    if os.path.isfile(path):
        atomic_write_text(path, ''.join(json.dumps(r) + '\n' for r in read_rows(path) if r['iter'] <= last_iter))


@MODEL_REGISTRY.register()
class SRKDModel(OwnValidation, SRModel):
    """Knowledge distillation for SR. Options beyond SRModel's: ``network_t``; ``path.pretrain_network_t``,
    ``param_key_t`` (default 'params'; ~ for plain state_dicts such as the official IMDN files),
    ``strict_load_t``; ``distill.pairs``, ``distill.fade``; ``train.distill_opts`` (each term may have its own
    ``fade``); ``train.nonfinite`` ('stop' | 'skip')."""

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        self.nonfinite, self.max_skip_share = nonfinite_policy(train_opt)
        self.skipped_steps = 0
        self._build_teacher()
        w = wire(self.opt, self.get_bare_model(self.net_g), self.net_t, self.device)
        self.taps_s, self.taps_t, self.distill = w.taps_s, w.taps_t, w.terms
        self.fades = term_fades(self.opt)
        self._setup_offline_teacher()
        if self.distill.has_parameters():
            self.distill = self.model_to_device(self.distill)
        self.loss_log = os.path.join(self.opt['path']['experiments_root'], 'losses.jsonl')
        # --- distillation without ground truth (PlainImageDataset): the teacher's output is the only target;
        # SRModel refuses to train without a task loss, so it gets one to build and it is dropped after ---
        no_gt = not train_opt.get('pixel_opt') and not train_opt.get('perceptual_opt')
        if no_gt:
            train_opt['pixel_opt'] = {'type': 'L1Loss'}
        try:
            super().init_training_settings()
        finally:
            if no_gt:
                del train_opt['pixel_opt']
                self.cri_pix = None
        # ---

    # ----- teacher -----------------------------------------------------------------------------------
    def _build_teacher(self):
        self.teacher = Teacher(self.opt, self.device)
        self.net_t, self.t_dtype = self.teacher.net, self.teacher.dtype
        get_root_logger().info(f'Teacher precision: {self.teacher.precision} (distill.teacher_precision: '
                               f'{(self.opt.get("distill") or {}).get("teacher_precision", "auto")})')

    def _setup_offline_teacher(self):
        """distill.teacher: offline: read the teacher's targets from its cache (built now when missing)."""
        self.teacher_cache = None
        if self.teacher.mode == 'online':
            return
        self.teacher.use_cache(self.taps_t, self.distill.names, self.distill.terms,
                               os.path.dirname(self.opt['path']['experiments_root']))
        self.teacher_cache = self.teacher.cache

    # ----- optimisation ------------------------------------------------------------------------------
    def setup_optimizers(self) -> None:
        super().setup_optimizers()
        extra = [p for p in self.distill.parameters() if p.requires_grad]
        if extra:
            self.optimizer_g.add_param_group({'params': extra})

    def feed_data(self, data: dict) -> None:
        super().feed_data(data)
        self.crop = data.get('crop')
        self.crop_paths = data.get('gt_path', data.get('lq_path'))
        if 'gt' not in data and 'crop' not in data and hasattr(self, 'teacher'):
            # a validation image without ground truth (PlainImageDataset): measured against the teacher
            self.gt = self.teacher.image_target(data['lq_path'][0], self.lq)

    def _teacher_targets(self, active=None):
        """(teacher SR, teacher features or None, teacher maps or None) for this batch: read from the
        offline cache (maps only when an active term compares them), or one teacher forward (at
        ``self.t_dtype``) with its taps."""
        if self.teacher_cache is not None:
            sr_t, maps = self.teacher_cache.targets(self.crop_paths, self.crop, self.lq.shape[-1], self.device,
                                                    maps=self.get_bare_model(self.distill).reads_maps(active))
            return sr_t, None, maps
        sr_t = self.teacher(self.lq)
        return sr_t, [f.float() for f in self.taps_t.outputs], None

    def optimize_parameters(self, current_iter: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            self._step(current_iter)
        finally:  # training time alone (no validation, no saving): wall, and CPU time of the process, which
            # for one thread is the step's compute however loaded the machine is (the axis of time studies)
            self.train_seconds = getattr(self, 'train_seconds', 0.0) + time.perf_counter() - wall
            self.train_cpu_seconds = getattr(self, 'train_cpu_seconds', 0.0) + time.process_time() - cpu

    def _step(self, current_iter):
        self.optimizer_g.zero_grad(set_to_none=True)
        self.taps_s.clear()
        self.taps_t.clear()
        self.output = self.net_g(self.lq)
        weights = [fade_factor(fade, current_iter) for fade in self.fades]
        active = self._active_terms(weights)
        distil = any(active)
        if distil:
            sr_t, feats_t, maps_t = self._teacher_targets(active)
        loss_dict = OrderedDict()
        l_total = 0
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
            l_total = l_total + loss_dict['l_pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for key, val in (('l_percep', l_percep), ('l_style', l_style)):
                if val is not None:
                    loss_dict[key] = val
                    l_total = l_total + val
        if distil:
            d = DistillInputs(feats_s=list(self.taps_s.outputs), feats_t=feats_t, maps_t=maps_t,
                              sr_s=self.output, sr_t=sr_t, lq=self.lq, gt=getattr(self, 'gt', None),
                              inputs_s=list(self.taps_s.inputs), inputs_t=list(self.taps_t.inputs),
                              student=self.get_bare_model(self.net_g), teacher=self.net_t,
                              teacher_dtype=self.t_dtype, lr_scale=self._lr_scale())
            for name, val in zip(self.distill_names(), self.distill(d, active, weights)):
                if val is None:  # faded: logged as 0 while another term is still on
                    loss_dict[f'l_{name}'] = torch.zeros((), device=self.output.device)
                    continue
                loss_dict[f'l_{name}'] = val  # the fade scales the term's distillation, not a part's own loss
                l_total = l_total + loss_dict[f'l_{name}']
        self.taps_s.clear()
        self.taps_t.clear()
        if not self._finite(loss_dict, current_iter):
            return
        l_total.backward()
        self.optimizer_g.step()
        if distil:  # terms' own parts (a critic), after the student's step
            self.get_bare_model(self.distill).own_step(d, active)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self._append_loss_log(current_iter)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _lr_scale(self):
        """The student's learning rate now over its initial one (the scheduler keeps ``initial_lr``)."""
        group = self.optimizer_g.param_groups[0]
        return group['lr'] / group['initial_lr'] if group.get('initial_lr') else 1.0

    def _active_terms(self, weights):
        """Which terms a step computes: those not faded to weight 0 (none: no teacher either). Under
        DistributedDataParallel a faded term with parameters (connectors) still runs, at weight 0, while
        another term does: DDP expects a gradient for every parameter of a module it runs."""
        active = [w > 0 for w in weights]
        if self.opt.get('dist') and any(active):
            terms = self.get_bare_model(self.distill).terms
            active = [on or any(p.requires_grad for p in t.parameters()) for on, t in zip(active, terms)]
        return active

    def distill_names(self) -> List[str]:
        return self.get_bare_model(self.distill).names

    def _finite(self, loss_dict, current_iter):
        """Stop (one line naming the term and iteration) or skip the step on a NaN/inf loss."""
        values = torch.stack([v.detach().float() for v in loss_dict.values()])
        finite = torch.isfinite(values).all().to(torch.int32)
        if self.opt['dist']:  # all ranks take the same branch, or the others hang in the next all-reduce
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if bool(finite):
            return True
        bad = [f'{k} = {float(v)}' for k, v in zip(loss_dict, values) if not math.isfinite(float(v))]
        bad = bad or ['a loss on another rank']
        if self.nonfinite == 'stop':
            raise SRKDError(f'{bad[0]} at iteration {current_iter}; stopped without saving this step. '
                            "Lower the learning rate or that term's weight, or set train.nonfinite: skip")
        self.skipped_steps += 1
        self.optimizer_g.zero_grad(set_to_none=True)
        get_root_logger().warning(f'iteration {current_iter}: {", ".join(bad)}; step skipped '
                                  f'({self.skipped_steps} so far)')
        check_skip_share(self.skipped_steps, current_iter, self.max_skip_share)
        self.log_dict = OrderedDict(skipped_steps=float(self.skipped_steps))
        return False

    def _append_loss_log(self, current_iter):
        freq = self.opt.get('logger', {}).get('print_freq', 100)
        if self.opt['rank'] != 0 or current_iter % freq:
            return
        append_row(self.loss_log, {'iter': current_iter, **{k: float(v) for k, v in self.log_dict.items()}})

    # ----- checkpoints -------------------------------------------------------------------------------
    def save(self, epoch: int, current_iter: int) -> None:
        """A checkpoint of an iteration that also validates is written after its validation (BasicSR saves
        first): a checkpoint then always has its validation rows and best student, so a run killed between
        the two resumes to the same logs and the same best checkpoint as an unbroken one."""
        if self._validates_at(current_iter):
            self._pending_save = (epoch, current_iter)
            return
        self._save_now(epoch, current_iter)

    def _validates_at(self, current_iter):
        val = self.opt.get('val') or {}
        has_val = any(str(k).startswith('val') for k in self.opt.get('datasets', {}))
        return (self.is_train and has_val and isinstance(current_iter, int) and current_iter > 0
                and bool(val.get('val_freq')) and current_iter % val['val_freq'] == 0)

    def validation(self, dataloader: torch.utils.data.DataLoader, current_iter: Union[int, str], *args: Any,
                   **kwargs: Any) -> None:
        result = super().validation(dataloader, current_iter, *args, **kwargs)
        pending = getattr(self, '_pending_save', None)
        if pending and pending[1] == current_iter:
            n_val = sum(str(k).startswith('val') for k in self.opt['datasets'])
            if sum(it == current_iter for _, it in self.__dict__.get('_validated', ())) >= n_val:
                self._pending_save = None
                self._save_now(*pending)
        return result

    def _save_now(self, epoch, current_iter):
        nets = [('net_g', self.net_g)] + ([('net_g_ema', self.net_g_ema)] if hasattr(self, 'net_g_ema') else [])
        for label, net in nets:  # never write weights that upscale to black
            bad = nonfinite_names(self.get_bare_model(net).state_dict())
            if bad:
                raise SRKDError(f'{label} holds NaN/inf weights ({", ".join(bad[:2])}) at iteration {current_iter}; '
                                'not saved')
        super().save(epoch, current_iter)
        if hasattr(self, 'distill') and self.get_bare_model(self.distill).has_parameters():
            self.save_network(self.distill, 'net_kd', current_iter)  # not net_d: BasicSR's GAN discriminator
        if self.opt.get('logger', {}).get('save_safetensors') and self.opt['rank'] == 0:
            # beside the .pth (which resume reads): the student as chaiNNer/ComfyUI/spandrel load it, unpickled
            from sr_kd.export import export_safetensors
            it = 'latest' if current_iter == -1 else current_iter
            for label, net in nets:
                export_safetensors(self.get_bare_model(net), os.path.join(self.opt['path']['models'],
                                                                          f'{label}_{it}.safetensors'))

    def extra_training_state(self) -> dict:
        """Saved inside the training state, so resume restores the connectors with the optimizer."""
        if not hasattr(self, 'distill'):
            return {}
        bare = self.get_bare_model(self.distill)
        return {'distill': {k: v.cpu() for k, v in bare.state_dict().items()}, 'distill_own': bare.own_state(),
                'skipped_steps': self.skipped_steps, 'train_seconds': getattr(self, 'train_seconds', 0.0),
                'train_cpu_seconds': getattr(self, 'train_cpu_seconds', 0.0)}

    def resume_training(self, resume_state: dict) -> None:
        if hasattr(self, 'distill') and 'distill' in resume_state:
            _check_same_terms(self.get_bare_model(self.distill), resume_state)
            self.get_bare_model(self.distill).load_state_dict(resume_state['distill'])
            self.get_bare_model(self.distill).load_own_state(resume_state.get('distill_own', {}))
            self.skipped_steps = resume_state.get('skipped_steps', 0)
            self.train_seconds = resume_state.get('train_seconds', 0.0)
            self.train_cpu_seconds = resume_state.get('train_cpu_seconds', 0.0)
        if self.opt['rank'] == 0:  # lines after the checkpoint come again from the resumed run
            for log in (self.loss_log, self._val_log()):
                _drop_after(log, resume_state['iter'])
            forget_later_best(self.opt['path']['experiments_root'], self.opt['path']['models'], self._val_log(),
                              resume_state['iter'])
        super().resume_training(resume_state)

    # ----- validation: bicubic vs teacher vs student -------------------------------------------------
    def nondist_validation(self, dataloader: torch.utils.data.DataLoader, current_iter: Union[int, str],
                           tb_logger: Optional[Any], save_img: bool) -> None:
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        if not self.opt['val'].get('metrics') or not hasattr(self, 'net_t'):
            return
        name = dataloader.dataset.opt['name']
        refs = self._reference_metrics(dataloader, name)  # without ground truth: against the teacher, no teacher row
        rows = {**refs, 'student': dict(self.metric_results)}
        metrics = list(self.metric_results)
        against = 'HR' if 'teacher' in refs else 'teacher'
        table = [f'Validation {name} @ iter {current_iter} (against {AGAINST[against]}): ' + ' | '.join(metrics)]
        for who, vals in rows.items():
            table.append(f'\t{who:<8} ' + '  '.join(f'{vals[m]:.4f}' for m in metrics))
        get_root_logger().info('\n'.join(table))
        if tb_logger:
            for who in refs:
                for m in metrics:
                    tb_logger.add_scalar(f'metrics/{name}/{who}_{m}', rows[who][m], current_iter)
        append_row(self._val_log(), {'iter': current_iter, 'dataset': name, 'against': against,
                                     'train_seconds': round(getattr(self, 'train_seconds', 0.0), 2),
                                     'train_cpu_seconds': round(getattr(self, 'train_cpu_seconds', 0.0), 2), **rows})
        self._keep_best(name, current_iter, rows['student'])

    def _keep_best(self, name, current_iter, student):
        """``val.keep_best``, judged on the first val set (``best_student``); the network validation measured:
        the EMA copy where there is one (BasicSR validates net_g_ema)."""
        metric = self.opt['val'].get('keep_best')
        first = next((d['name'] for k, d in self.opt['datasets'].items() if k.startswith('val')), None)
        if metric and name == first and self.opt['rank'] == 0:
            keep_if_best(self.opt['path']['experiments_root'], self._val_log(), name, metric, current_iter,
                         student[metric], lambda: self.save_network(getattr(self, 'net_g_ema', self.net_g), 'net_g',
                                                                    'best'))

    def _val_log(self):
        return os.path.join(self.opt['path']['experiments_root'], 'val_metrics.jsonl')

    def _reference_metrics(self, dataloader, name):
        """Bicubic and teacher rows of a validation set (``reference_rows``): fixed, so computed once."""
        cache = self.__dict__.setdefault('_ref_cache', {})
        if name not in cache:
            cache[name] = reference_metrics(dataloader, self.opt['val']['metrics'], self.teacher, self.device)
        return cache[name]


def _check_same_terms(head, resume_state):
    """A run resumes with the distillation terms it was saved with: their connectors are in the state and in
    the optimizer's parameter groups (a term added or removed between runs failed with a traceback there)."""
    saved, now = set(resume_state['distill']), set(head.state_dict())
    if saved != now:
        def with_weights(keys):
            found = sorted({int(k.split('.')[1]) for k in keys if k.startswith('terms.')})
            return ', '.join(f'#{i + 1}' for i in found) or 'none'
        raise SRKDError(f'the training state of iteration {resume_state["iter"]} holds trained weights of the '
                        f'distillation terms {with_weights(saved)} (in train.distill_opts order), the option file '
                        f'now has weights in {with_weights(now)} ({", ".join("l_" + n for n in head.names)}): '
                        'resume with the terms of that run, or start a new name')
