"""Properties every term of the distillation zoo must have: selectable by name, gradients to the student
and its connectors but never to the teacher, minimum at identical features where the method says so,
finite on flat patches and batches of one (or a clear refusal), float32 math under bf16 autocast.
The equations themselves are checked per family in test_zoo_<family>.py."""
import copy
import re
from pathlib import Path

import pytest
import torch

from basicsr.losses import build_loss
from sr_kd.errors import SRKDError
from sr_kd.schema import distill_losses, term_example, term_model
from zoo_util import FEATURE_TERMS, NEEDS_BATCH_2, build, forward_pair, leaf_inputs, make_nets, shapes

def _zero_at_identity():
    """{term: options} of the feature terms that give zero when the student's features are the teacher's
    (``zero_when_features_equal``), their connector made the identity where it would be learned."""
    import inspect
    found = {}
    for name, cls in distill_losses().items():
        if name in FEATURE_TERMS and cls.zero_when_features_equal:
            connector = inspect.signature(cls.__init__).parameters.get('connector')
            learned = connector is not None and connector.default not in ('auto', 'identity')
            found[name] = {'connector': 'identity'} if learned else {}
    return found


ZERO_AT_IDENTITY = _zero_at_identity()


@pytest.mark.parametrize('name', sorted(distill_losses()))
def test_every_registered_loss_has_an_example_that_the_schema_and_the_registry_take(name):
    """Each loss's docstring carries a YAML example of its train.distill_opts item (docs/options.md shows it):
    valid for the schema and built by the registry, with the term's name."""
    import yaml

    from sr_kd.distill.head import build_terms
    cls = distill_losses()[name]
    text, example = term_example(cls)
    assert example['type'] == name and yaml.safe_load(text) == example
    term_model(name, cls).model_validate(example)
    names, terms = build_terms([example])
    assert names == [example['name']] and type(terms[0]) is cls


def test_every_registered_loss_is_tested():
    """Feature terms run through the generic tests of this file (from the registry); every other term is named
    by a test file of its own (a new one fails here until a test names it)."""
    text = ' '.join(p.read_text() for p in Path(__file__).parent.glob('test_*.py'))
    for name, cls in distill_losses().items():
        assert name in FEATURE_TERMS or re.search(rf'\b{name}\b', text), f'no test names {name}'
    assert {'FitNetLoss', 'ATLoss', 'MHGDLoss', 'CRDLoss'} <= set(FEATURE_TERMS) and 'OutputDistillLoss' not in FEATURE_TERMS


@pytest.mark.parametrize('name', sorted(FEATURE_TERMS))
def test_gradients_reach_student_and_connectors_not_teacher(name):
    student, teacher = make_nets(cs=8, ct=16)
    lq = torch.rand(4, 3, 8, 8)
    d = forward_pair(student, teacher, lq)
    assert all(not f.requires_grad for f in d.feats_t)
    loss = build(name, shapes(d.feats_s), shapes(d.feats_t))
    value = loss(d)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = [p.grad for p in student.levels.parameters()]  # the tapped part of the student
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    for pname, p in loss.named_parameters():  # what the student's optimizer trains (connectors, embeddings)
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        else:  # a part with an optimizer of its own (MHGD's graph head) gets nothing from the student's loss
            assert p.grad is None, pname
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize('name', sorted(ZERO_AT_IDENTITY))
def test_zero_when_student_equals_teacher(name):
    torch.manual_seed(1)
    feats = [torch.randn(4, 8, 8, 8) for _ in range(3)]
    sr = torch.rand(4, 3, 16, 16)
    loss = build(name, shapes(feats), shapes(feats), **ZERO_AT_IDENTITY[name])
    d = leaf_inputs(feats, feats, sr_s=sr.clone().requires_grad_(True), sr_t=sr)
    value = loss(d)
    assert value.detach().abs() < 1e-6
    value.backward()
    for f in d.feats_s:  # every level is distilled, so a gradient must exist, and vanish at the minimum
        assert f.grad is not None and f.grad.abs().max() < 1e-5


def flat_features(n, c, kind):
    """Zero-variance patches: all zero, one colour for the whole batch, or one colour per patch."""
    if kind == 'zero':
        return torch.zeros(n, c, 8, 8)
    values = torch.full((n, c), 0.7) if kind == 'same' else torch.randn(n, c)
    return values[:, :, None, None].expand(n, c, 8, 8).contiguous()


@pytest.mark.parametrize('kind', ['zero', 'same', 'per_patch'])
@pytest.mark.parametrize('name', sorted(FEATURE_TERMS))
def test_flat_patches_are_finite(name, kind):
    torch.manual_seed(2)
    fs = [flat_features(4, 8, kind) for _ in range(3)]
    ft = [flat_features(4, 16, kind) for _ in range(3)]
    loss = build(name, shapes(fs), shapes(ft))
    d = leaf_inputs(fs, ft)
    value = loss(d)
    assert torch.isfinite(value)
    value.backward()
    assert all(torch.isfinite(f.grad).all() for f in d.feats_s if f.grad is not None)
    assert all(torch.isfinite(p.grad).all() for p in loss.parameters() if p.grad is not None)


@pytest.mark.parametrize('flat', [False, True])
@pytest.mark.parametrize('name', sorted(FEATURE_TERMS))
def test_batch_of_one_is_finite_or_refused(name, flat):
    torch.manual_seed(3)
    fs = [flat_features(1, 8, 'same') if flat else torch.randn(1, 8, 8, 8) for _ in range(3)]
    ft = [flat_features(1, 16, 'same') if flat else torch.randn(1, 16, 8, 8) for _ in range(3)]
    loss = build(name, shapes(fs), shapes(ft))
    d = leaf_inputs(fs, ft)
    if name in NEEDS_BATCH_2:
        assert loss.min_batch == 2
        with pytest.raises(SRKDError, match='batch of at least 2'):
            loss(d)
        return
    assert loss.min_batch == 1
    value = loss(d)
    value.backward()
    assert torch.isfinite(value)
    assert all(torch.isfinite(f.grad).all() for f in d.feats_s if f.grad is not None)


@pytest.mark.parametrize('name', sorted(FEATURE_TERMS))
def test_bf16_autocast_computes_in_float32(name):
    torch.manual_seed(4)
    fs = [torch.randn(4, 8, 8, 8).bfloat16() for _ in range(3)]
    ft = [torch.randn(4, 16, 8, 8).bfloat16() for _ in range(3)]
    loss = build(name, shapes(fs), shapes(ft))
    plain, auto = copy.deepcopy(loss), copy.deepcopy(loss)  # same state (memories, BN statistics)
    torch.manual_seed(5)  # and the same random draws (MHGD's drop-head)
    reference = plain(leaf_inputs([f.float() for f in fs], [f.float() for f in ft]))
    torch.manual_seed(5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = auto(leaf_inputs(fs, ft))
    assert value.dtype == torch.float32
    assert torch.allclose(value, reference, rtol=1e-4, atol=1e-6), (float(value), float(reference))


def test_bad_options_raise_one_line_errors():
    with pytest.raises(SRKDError, match='connector must be one of'):
        build_loss({'type': 'FitNetLoss', 'connector': 'mlp'})
    with pytest.raises(SRKDError, match='identity needs equal channels'):
        build('FitNetLoss', [(8, 8, 8)], [(16, 8, 8)], connector='identity')
    for name in ('FSPLoss', 'KDSVDLoss', 'MHGDLoss'):
        with pytest.raises(SRKDError, match='at least two distill.pairs'):
            build(name, [(8, 8, 8)], [(16, 8, 8)])
    with pytest.raises(SRKDError, match='level_weights has 2 entries'):
        build('ATLoss', [(8, 8, 8)] * 3, [(16, 8, 8)] * 3, level_weights=[1, 2])
    with pytest.raises(SRKDError, match='equal spatial sizes'):
        build('ATLoss', [(8, 8, 8)], [(16, 4, 4)])
    with pytest.raises(SRKDError, match="pool must be 'avg' or 'max'"):
        build_loss({'type': 'PairWiseLoss', 'pool': 'median'})
    with pytest.raises(SRKDError, match="variant must be 'paper' or 'released'"):
        build_loss({'type': 'PairWiseLoss', 'variant': 'official'})
    with pytest.raises(SRKDError, match='init_var must exceed eps'):
        build_loss({'type': 'VIDLoss', 'init_var': 0})


def test_terms_run_on_imdn_taps():
    """Real SR features: IMDN students/teachers of different widths, tapped by module name."""
    from sr_kd.archs.imdn_arch import IMDN
    from sr_kd.distill.taps import FeatureTaps
    from sr_kd.losses.base import DistillInputs

    torch.manual_seed(5)
    student, teacher = IMDN(num_feat=8, num_modules=2, upscale=2), IMDN(num_feat=16, num_modules=3, upscale=2)
    teacher.eval().requires_grad_(False)
    taps_s, taps_t = FeatureTaps(student, ['IMDB1', 'IMDB2']), FeatureTaps(teacher, ['IMDB1', 'IMDB3'], role='teacher')
    lq = torch.rand(2, 3, 8, 8)
    sr_s = student(lq)
    with torch.no_grad():
        sr_t = teacher(lq)
    d = DistillInputs(list(taps_s.outputs), list(taps_t.outputs), sr_s, sr_t, lq)
    total = 0
    for name in FEATURE_TERMS:
        loss = build(name, shapes(d.feats_s), shapes(d.feats_t))
        value = loss(d)
        assert torch.isfinite(value), name
        total = total + value
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
    assert all(p.grad is None for p in teacher.parameters())
