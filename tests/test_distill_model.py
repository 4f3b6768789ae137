"""SRKDModel: teacher frozen and never saved, every term trains the student (and connectors) only,
statistics equal an independent computation, resume restores the exact state, bad options fail in one line."""
import copy
import os

import numpy as np
import pytest
import torch
from PIL import Image

from basicsr.losses import build_loss
from basicsr.models import build_model
from sr_kd.archs import IMDN
from sr_kd.errors import SRKDError
from sr_kd.losses.base import DistillInputs
from sr_kd.losses.feature_stats import stat_map


@pytest.fixture
def opt(tmp_path):
    torch.manual_seed(0)
    torch.save({'params': IMDN(num_feat=16, num_modules=2, upscale=2).state_dict()}, tmp_path / 'teacher.pth')
    data = tmp_path / 'hr'
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(data / f'{i}.png')
    root = tmp_path / 'exp'
    paths = {k: str(root / k) for k in ('models', 'training_states', 'log', 'visualization')}
    for p in paths.values():
        os.makedirs(p)
    return {
        'name': 'unit', 'model_type': 'SRKDModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'auto_resume': False,
        'datasets': {'train': {'name': 't', 'type': 'HROnlyDataset', 'dataroot_gt': str(data), 'gt_size': 16,
                               'phase': 'train', 'scale': 2, 'batch_size_per_gpu': 2}},
        'network_g': {'type': 'IMDN', 'num_feat': 8, 'num_modules': 2, 'upscale': 2},
        'network_t': {'type': 'IMDN', 'num_feat': 16, 'num_modules': 2, 'upscale': 2},
        'path': {'pretrain_network_t': str(tmp_path / 'teacher.pth'), 'param_key_t': 'params',
                 'experiments_root': str(root), **paths},
        'distill': {'pairs': [['IMDB1', 'IMDB1'], ['IMDB2', 'IMDB2']]},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [100],
                                                                        'gamma': 0.5},
                  'total_iter': 10, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'distill_opts': [
                      {'type': 'FeatureStatsLoss', 'name': 'fs', 'stat': 'pow_mean'},
                      {'type': 'OutputDistillLoss', 'name': 'out'},
                      {'type': 'FitNetLoss', 'name': 'hint'}]},  # student 8 -> teacher 16: 1x1 connectors
        'logger': {'print_freq': 1},
        'val': {'metrics': None},
    }


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(2, 3, 8, 8, generator=g), 'gt': torch.rand(2, 3, 16, 16, generator=g)}


def test_training_updates_student_only(opt):
    model = build_model(copy.deepcopy(opt))
    teacher_before = {k: v.clone() for k, v in model.net_t.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    connectors_before = [p.detach().clone() for p in model.distill.parameters()]
    assert len(connectors_before) == 4  # FitNet's two 1x1 convolutions (weight, bias)
    for it in range(1, 4):
        model.feed_data(_batch(it))
        model.optimize_parameters(it)
        # the taps hold no feature across steps (nothing stays alive between iterations)
        assert all(f is None for f in model.taps_s.outputs + model.taps_t.outputs)
        assert all(f is None for f in model.taps_s.inputs + model.taps_t.inputs)
    assert all(not torch.equal(a, p) for a, p in zip(connectors_before, model.distill.parameters()))
    assert all(torch.equal(v, model.net_t.state_dict()[k]) for k, v in teacher_before.items())
    assert all(p.grad is None and not p.requires_grad for p in model.net_t.parameters())
    assert not model.net_t.training
    assert any(not torch.equal(v, model.net_g.state_dict()[k]) for k, v in student_before.items())
    names = [t['name'] for t in opt['train']['distill_opts']]
    assert set(model.log_dict) == {'l_pix', *(f'l_{n}' for n in names)}
    # the connectors are in the optimizer
    opt_params = {id(p) for g in model.optimizer_g.param_groups for p in g['params']}
    assert all(id(p) in opt_params for p in model.distill.parameters())


def test_each_term_sends_gradients_to_student_only(opt):
    model = build_model(copy.deepcopy(opt))
    model.feed_data(_batch())
    for name in model.distill.names:
        model.optimizer_g.zero_grad(set_to_none=True)
        model.taps_s.clear()
        model.taps_t.clear()
        out = model.net_g(model.lq)
        sr_t, feats_t, _ = model._teacher_targets()
        d = DistillInputs(list(model.taps_s.outputs), feats_t, out, sr_t, model.lq, model.gt)
        term = model.distill.terms[model.distill.names.index(name)]
        term(d).backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net_g.parameters()), name
        assert all(p.grad is None for p in model.net_t.parameters()), name
        assert all(p.grad is not None for p in term.parameters()), name


@pytest.mark.parametrize('p', [1, 2, 3])
def test_stat_maps_match_loops(p):
    x = torch.randn(2, 5, 3, 4)
    for stat, ref in [
        ('mean_pow', lambda v: (sum(v[c] for c in range(5)) / 5) ** p),
        ('pow_mean', lambda v: sum(abs(v[c]) ** p for c in range(5)) / 5),
        ('max', lambda v: max(v)),
        ('min', lambda v: min(v)),
        ('std', lambda v: (sum((v[c] - sum(v) / 5) ** 2 for c in range(5)) / 5) ** 0.5),
    ]:
        m = stat_map(x, stat, p=p)
        for n in range(2):
            for i in range(3):
                for j in range(4):
                    v = [float(x[n, c, i, j]) for c in range(5)]
                    assert float(m[n, i, j]) == pytest.approx(ref(v), rel=1e-5, abs=1e-6), stat


@pytest.mark.parametrize('p', [1, 2, 4])
def test_feature_stats_loss_value_and_minimum(p):
    loss = build_loss({'type': 'FeatureStatsLoss', 'stat': 'pow_mean', 'p': p, 'level_weights': [1, 3]})
    s = [torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)]
    t = [torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)]
    loss.setup([tuple(f.shape[1:]) for f in s], [tuple(f.shape[1:]) for f in t])
    d = DistillInputs(s, t, None, None, None)
    expected = 0.0
    for w, fs, ft in zip([1, 3], s, t):
        for n in range(2):
            a = (fs[n].abs() ** p).mean(0).flatten()
            b = (ft[n].abs() ** p).mean(0).flatten()
            expected += w * float(((a / a.norm() - b / b.norm()) ** 2).sum()) / 2
    assert float(loss(d)) == pytest.approx(expected, rel=1e-5)
    same = DistillInputs(s, [f.repeat(1, 2, 1, 1) for f in s], None, None, None)  # same statistics, wider teacher
    assert float(loss(same)) == pytest.approx(0.0, abs=1e-10)
    flat = DistillInputs([torch.zeros(1, 4, 3, 3, requires_grad=True)] * 2, [torch.zeros(1, 8, 3, 3)] * 2, None, None, None)
    val = loss(flat)
    val.backward()
    assert torch.isfinite(val) and torch.isfinite(flat.feats_s[0].grad).all()


def test_save_and_resume_restore_exact_state(opt):
    model = build_model(copy.deepcopy(opt))
    for it in range(1, 3):
        model.feed_data(_batch(it))
        model.optimize_parameters(it)
    model.save(0, 2)
    state = torch.load(os.path.join(opt['path']['training_states'], '2.state'), weights_only=True)
    ckpt = torch.load(os.path.join(opt['path']['models'], 'net_g_2.pth'), weights_only=True)
    assert not any(k.startswith('net_t') for k in ckpt['params']) and set(ckpt) == {'params'}
    # the connectors are saved apart, not under BasicSR's discriminator name (net_d)
    assert sorted(os.listdir(opt['path']['models'])) == ['net_g_2.pth', 'net_kd_2.pth']
    assert set(torch.load(os.path.join(opt['path']['models'], 'net_kd_2.pth'), weights_only=True)['params'])
    resumed_opt = copy.deepcopy(opt)
    resumed_opt['path']['pretrain_network_g'] = os.path.join(opt['path']['models'], 'net_g_2.pth')
    resumed = build_model(resumed_opt)
    resumed.resume_training(state)
    for a, b in zip(model.net_g.state_dict().values(), resumed.net_g.state_dict().values()):
        assert torch.equal(a, b)
    assert len(model.distill.state_dict()) == 4  # FitNet's connectors
    for a, b in zip(model.distill.state_dict().values(), resumed.distill.state_dict().values()):
        assert torch.equal(a, b)
    sa, sb = model.optimizer_g.state_dict(), resumed.optimizer_g.state_dict()
    for k in sa['state']:
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(sa['state'][k][name], sb['state'][k][name])
    # one more identical step from both gives identical students
    for m in (model, resumed):
        m.feed_data(_batch(9))
        m.optimize_parameters(3)
    for a, b in zip(model.net_g.state_dict().values(), resumed.net_g.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize('mutate,expect', [
    (lambda o: o['distill'].update(pairs=[['IMDB9', 'IMDB1']]), "student network has no module 'IMDB9'"),
    (lambda o: o['distill'].update(pairs=[['IMDB1', 'IMBD2']]), "did you mean: IMDB2"),
    (lambda o: o['train']['distill_opts'].append({'type': 'FeatureStatLoss'}), 'FeatureStatsLoss'),
    (lambda o: o['path'].pop('pretrain_network_t'), 'path.pretrain_network_t is missing'),
    (lambda o: o['train']['distill_opts'][0].update(stat='median'), "unknown stat 'median'"),
    (lambda o: o['network_t'].update(upscale=3), 'does not fit network_t'),
    (lambda o: o['distill'].update(pairs=[['fea_conv', 'upsampler']]), 'spatial sizes differ (student 8x8, teacher 16x16'),
])
def test_bad_options_fail_in_one_line(opt, mutate, expect):
    bad = copy.deepcopy(opt)
    mutate(bad)
    with pytest.raises(SRKDError) as err:
        build_model(bad)
    assert expect in str(err.value) and '\n' not in str(err.value)


def test_terms_that_rerun_the_networks_train_inside_the_model(opt):
    """Sobolev re-runs student and teacher (DistillInputs carries both networks)."""
    o = copy.deepcopy(opt)
    o['train']['distill_opts'] = [{'type': 'SobolevLoss', 'name': 'sob'}]
    model = build_model(o)
    teacher_before = {k: v.clone() for k, v in model.net_t.state_dict().items()}
    model.feed_data(_batch())
    model.optimize_parameters(1)
    assert torch.isfinite(torch.tensor(model.log_dict['l_sob']))
    assert all(torch.equal(v, model.net_t.state_dict()[k]) for k, v in teacher_before.items())
    assert all(p.grad is None for p in model.net_t.parameters())


def _memories(model):
    from sr_kd.losses.relational import _Memory
    return [m for m in model.distill.modules() if isinstance(m, _Memory)]


def test_crd_memory_skips_the_dry_run_and_is_restored_on_resume(opt):
    """The probe batch never enters CRD's memories; training fills them; resume restores them exactly."""
    o = copy.deepcopy(opt)
    o['train']['distill_opts'] = [{'type': 'CRDLoss', 'name': 'crd', 'nce_k': 16, 'feat_dim': 8}]
    model = build_model(o)
    assert len(_memories(model)) == 4 and all(int(m.filled) == 0 for m in _memories(model))
    for it in range(1, 3):
        model.feed_data(_batch(it))
        model.optimize_parameters(it)
    assert all(int(m.filled) == 4 for m in _memories(model))
    model.save(0, 2)
    state = torch.load(os.path.join(opt['path']['training_states'], '2.state'), weights_only=True)
    resumed_opt = copy.deepcopy(o)
    resumed_opt['path']['pretrain_network_g'] = os.path.join(opt['path']['models'], 'net_g_2.pth')
    resumed = build_model(resumed_opt)
    resumed.resume_training(state)
    for a, b in zip(_memories(model), _memories(resumed)):
        assert torch.equal(a.bank, b.bank) and int(a.ptr) == int(b.ptr) and int(a.filled) == int(b.filled)


# terms with a part trained by an optimizer of its own (options, that part)
OWN_PARTS = {'HolisticLoss': ({'dim': 8}, lambda term: term.critic),
             'MHGDLoss': ({'head_iters': 3}, lambda term: term.graphs)}  # step 3 is still the head's stage


@pytest.mark.parametrize('kind', sorted(OWN_PARTS))
def test_own_parts_train_apart_and_resume_exactly(opt, kind):
    """The critic (holistic) or graph head (MHGD): out of the student's optimizer, stepped by its own after
    each student step, never touching the teacher; saved (weights + optimizer) and restored so the next
    step is identical."""
    o = copy.deepcopy(opt)
    o['train']['distill_opts'] = [{'type': kind, 'name': 'own', 'loss_weight': 0.1, **OWN_PARTS[kind][0]}]
    model = build_model(o)
    critic = OWN_PARTS[kind][1](model.distill.terms[0])
    opt_params = {id(p) for g in model.optimizer_g.param_groups for p in g['params']}
    assert not any(id(p) in opt_params for p in critic.parameters())
    teacher_before = {k: v.clone() for k, v in model.net_t.state_dict().items()}
    critic_before = {k: v.clone() for k, v in critic.state_dict().items()}
    for it in range(1, 3):
        torch.manual_seed(it)
        model.feed_data(_batch(it))
        model.optimize_parameters(it)
    assert any(not torch.equal(v, critic.state_dict()[k]) for k, v in critic_before.items())
    assert all(torch.equal(v, model.net_t.state_dict()[k]) for k, v in teacher_before.items())
    assert all(p.grad is None for p in model.net_t.parameters())
    model.save(0, 2)
    assert not [f for f in os.listdir(opt['path']['models']) if f.startswith('net_d')]  # BasicSR's GAN name
    state = torch.load(os.path.join(opt['path']['training_states'], '2.state'), weights_only=True)
    resumed_opt = copy.deepcopy(o)
    resumed_opt['path']['pretrain_network_g'] = os.path.join(opt['path']['models'], 'net_g_2.pth')
    resumed = build_model(resumed_opt)
    resumed.resume_training(state)
    for m in (model, resumed):
        torch.manual_seed(9)
        m.feed_data(_batch(9))
        m.optimize_parameters(3)
    for a, b in zip(model.distill.state_dict().values(), resumed.distill.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(model.net_g.state_dict().values(), resumed.net_g.state_dict().values()):
        assert torch.equal(a, b)


def test_distill_fade_scales_then_stops_the_terms(opt, tmp_path):
    """distill.fade: [start, end]: every term at full weight up to start, linearly less to 0 at end, then a
    plain student step in which the teacher does not run."""
    plain = build_model(copy.deepcopy(opt))
    faded_opt = copy.deepcopy(opt)
    faded_opt['distill']['fade'] = [2, 6]
    faded = build_model(faded_opt)
    for a, b in ((plain.net_g, faded.net_g), (plain.distill, faded.distill)):
        b.load_state_dict(a.state_dict())
    calls = []
    faded.net_t.register_forward_hook(lambda *_: calls.append(1))
    for model in (plain, faded):  # iteration 4 of fade [2, 6]: half weight
        model.feed_data(_batch(4))
        model.optimize_parameters(4)
    assert calls and plain.log_dict['l_pix'] == faded.log_dict['l_pix']
    for name in ('fs', 'out', 'hint'):
        assert faded.log_dict[f'l_{name}'] == pytest.approx(0.5 * plain.log_dict[f'l_{name}'], rel=1e-6)
    calls.clear()
    faded.feed_data(_batch(7))
    before = {k: v.clone() for k, v in faded.net_g.state_dict().items()}
    faded.optimize_parameters(7)
    assert not calls and set(faded.log_dict) == {'l_pix'}
    assert any(not torch.equal(v, faded.net_g.state_dict()[k]) for k, v in before.items())  # still trains


def test_a_terms_own_fade_overrides_distill_fade(opt):
    """A term's own fade: false keeps it at full weight after distill.fade has faded the others (the teacher
    still runs for it), and its own [start, end] fades it on its own schedule."""
    plain = build_model(copy.deepcopy(opt))
    o = copy.deepcopy(opt)
    o['distill']['fade'] = [2, 6]
    terms = {t['name']: t for t in o['train']['distill_opts']}
    terms['out']['fade'] = False
    terms['hint']['fade'] = [0, 8]
    mixed = build_model(o)
    for a, b in ((plain.net_g, mixed.net_g), (plain.distill, mixed.distill)):
        b.load_state_dict(a.state_dict())
    for model in (plain, mixed):
        model.feed_data(_batch(7))
        model.optimize_parameters(7)
    assert mixed.log_dict['l_fs'] == 0  # distill.fade ended at 6
    assert mixed.log_dict['l_out'] == pytest.approx(plain.log_dict['l_out'], rel=1e-6)
    assert mixed.log_dict['l_hint'] == pytest.approx(plain.log_dict['l_hint'] / 8, rel=1e-6)  # (8 - 7) / 8
    with pytest.raises(SRKDError, match=r'train.distill_opts\[1\].fade must be \[start, end\]'):
        from sr_kd.rules import term_fades
        term_fades({'train': {'total_iter': 10, 'distill_opts': [{}, {'fade': [5, 2]}]}})


def test_a_faded_term_is_not_computed_while_another_stays_on(opt):
    """A term faded to weight 0 costs nothing: its loss is not computed (logged as 0) while the output term
    keeps the teacher running; before its fade ends it is computed as usual."""
    o = copy.deepcopy(opt)
    o['distill']['fade'] = [2, 6]
    for t in o['train']['distill_opts']:
        if t['name'] == 'out':
            t['fade'] = False
    model = build_model(o)
    calls = {name: 0 for name in model.distill.names}
    for name, term in zip(model.distill.names, model.distill.terms):
        term.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    model.feed_data(_batch(5))
    model.optimize_parameters(5)  # fade [2, 6] at 5: a quarter weight, every term computed
    assert calls == {'fs': 1, 'out': 1, 'hint': 1}
    model.feed_data(_batch(7))
    model.optimize_parameters(7)
    assert calls == {'fs': 1, 'out': 2, 'hint': 1}
    assert model.log_dict['l_fs'] == 0 and model.log_dict['l_hint'] == 0 and model.log_dict['l_out'] > 0
    model.opt['dist'] = True  # DDP wants a gradient for every parameter it runs: the connectors' term runs
    assert model._active_terms([0.0, 1.0, 0.0]) == [False, True, True]
    assert model._active_terms([0.0, 0.0, 0.0]) == [False, False, False]


@pytest.mark.parametrize('fade', [[6, 2], [3], 'late', [True, 4], [-1, 4], [1.5, 4], [0.1, 3], [0.3, 0.1],
                                  [0.5, 1.5], [0.0001, 0.0002]])
def test_distill_fade_refuses_bad_values(fade):
    from sr_kd.rules import distill_fade
    with pytest.raises(SRKDError, match=r'distill.fade must be \[start, end\]'):
        distill_fade({'distill': {'fade': fade}, 'train': {'total_iter': 1000}})


def test_distill_fade_fractions_scale_with_the_budget():
    from sr_kd.rules import distill_fade
    assert distill_fade({'distill': {'fade': [0.1, 0.3]}, 'train': {'total_iter': 20000}}) == (2000, 6000)
    assert distill_fade({'distill': {'fade': [0.1, 0.3]}, 'train': {'total_iter': 1000}}) == (100, 300)
    assert distill_fade({'distill': {'fade': [0.0, 1.0]}, 'train': {'total_iter': 7}}) == (0, 7)
    assert distill_fade({'distill': {'fade': [2000, 6000]}, 'train': {'total_iter': 1000}}) == (2000, 6000)
    with pytest.raises(SRKDError, match='fraction of train.total_iter'):
        distill_fade({'distill': {'fade': [0.1, 0.3]}, 'train': {}})


def test_a_capped_fade_scales_a_short_run_and_keeps_a_long_runs_window():
    """{fraction, at_most}: the default's window, 10%-30% of a short run, at most 2,000-6,000 iterations of a
    long one (the KD study at 100,000 iterations: the feature term helps early, in absolute iterations)."""
    from sr_kd.rules import distill_fade, term_fades
    capped = {'fraction': [0.1, 0.3], 'at_most': [2000, 6000]}
    for total, window in ((1000, (100, 300)), (15000, (1500, 4500)), (20000, (2000, 6000)),
                          (100000, (2000, 6000))):
        assert distill_fade({'distill': {'fade': capped}, 'train': {'total_iter': total}}) == window
    assert term_fades({'train': {'total_iter': 100000, 'distill_opts': [{'fade': capped}]}}) == [(2000, 6000)]
    for bad in ({'fraction': [0.1, 0.3]}, {'fraction': [1, 3], 'at_most': [2000, 6000]},
                {'fraction': [0.1, 0.3], 'at_most': [6000, 2000]}, {'fraction': [0.1, 0.3], 'at_most': [0.2, 0.6]},
                {'fraction': [0.1, 0.3], 'at_most': [2000, 6000], 'from': 0}):
        with pytest.raises(SRKDError, match=r'distill.fade must be \[start, end\].*at_most'):
            distill_fade({'distill': {'fade': bad}, 'train': {'total_iter': 1000}})


def test_distill_fade_needs_a_task_loss(tmp_path):
    from kd_util import tiny_options
    from sr_kd.options import check_options
    o = tiny_options(tmp_path)  # images with no ground truth: the teacher's output is the only target
    o['datasets']['train'].update(type='PlainImageDataset', dataroot_lq=o['datasets']['train'].pop('dataroot_gt'))
    del o['val'], o['datasets']['val'], o['train']['pixel_opt']
    o['train']['distill_opts'] = [{'type': 'OutputDistillLoss', 'name': 'out'}]
    check_options(o)
    o['distill']['fade'] = [1, 2]
    with pytest.raises(SRKDError, match='no task loss'):
        check_options(o)
    o['train']['distill_opts'][0]['fade'] = False  # the output term stays on: there is always a target
    check_options(o)


def test_gated_output_term_builds_and_trains_on_hr_data(opt):
    # the option check's probe batch must carry an HR batch like training does, or a term that compares
    # with the HR image (gate: teacher_closer) is refused before iteration 1 although training has HR images
    o = copy.deepcopy(opt)
    o['train']['distill_opts'] = [{'type': 'OutputDistillLoss', 'name': 'out', 'gate': 'teacher_closer'}]
    model = build_model(o)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(_batch())
    model.optimize_parameters(1)
    assert model.log_dict['l_out'] > 0
    assert any(not torch.equal(a, p) for a, p in zip(before, model.net_g.parameters()))


@pytest.mark.parametrize('kind', sorted(OWN_PARTS))
def test_own_optimizers_follow_the_students_schedule(opt, kind):
    """The released holistic code and the MHGD seed decay the critic's / head's rate with the student's."""
    o = copy.deepcopy(opt)
    o['train']['scheduler'] = {'type': 'MultiStepLR', 'milestones': [1], 'gamma': 0.5}
    o['train']['distill_opts'] = [{'type': kind, 'name': 'own', 'loss_weight': 0.1, **OWN_PARTS[kind][0]}]
    model = build_model(o)
    term = model.distill.terms[0]
    base = term.own_lr
    rates = []
    for it in (1, 2):
        model.update_learning_rate(it, warmup_iter=-1)
        model.feed_data(_batch(it))
        model.optimize_parameters(it)
        rates.append(term.optimizer().param_groups[0]['lr'])
    assert model.get_current_learning_rate()[0] == pytest.approx(0.5e-3)  # BasicSR steps it from iteration 2
    assert rates == [pytest.approx(base), pytest.approx(0.5 * base)]


def test_fade_scales_dml_mimicry_not_the_peers_task(opt):
    """At fade factor 0.5 the peer still learns its task in full: its gradient is that of
    L1(peer, HR) + 0.5 x w x L1(peer, student), as at weight 0.5 w (Zhang et al.'s symmetric peers)."""
    o = copy.deepcopy(opt)
    w = 0.4
    o['distill']['fade'] = [2, 6]  # iteration 4: factor 0.5
    o['train']['optim_g']['lr'] = 0.0  # the gradients are read after the step
    o['train']['distill_opts'] = [{'type': 'DMLLoss', 'name': 'dml', 'loss_weight': w,
                                   'network_peer': {'type': 'IMDN', 'num_feat': 8, 'num_modules': 1, 'upscale': 2}}]
    model = build_model(o)
    peer = model.distill.terms[0].peer
    batch = _batch(4)
    model.feed_data(batch)
    model.optimize_parameters(4)
    got = [p.grad.clone() for p in peer.parameters()]
    ref_peer = copy.deepcopy(peer)
    ref_peer.zero_grad(set_to_none=True)
    sr_p = ref_peer(batch['lq'])
    ((sr_p - batch['gt']).abs().mean() + 0.5 * w * (sr_p - model.output.detach()).abs().mean()).backward()
    for a, p in zip(got, ref_peer.parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-5, atol=1e-8)
