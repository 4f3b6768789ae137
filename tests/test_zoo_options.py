"""options/zoo/<family>.yml: every term builds from the file and runs on the IMDN taps the file names
(random weights, small input); the full runs need ../shared and take minutes (scripts/zoo_benchmark.py)."""
from pathlib import Path

import pytest
import torch

import sr_kd  # noqa: F401
from basicsr.archs import build_network
from sr_kd.distill.head import build_terms
from sr_kd.distill.taps import FeatureTaps
from sr_kd.losses.base import DistillInputs
from sr_kd.options import load_yaml

FILES = sorted((Path(__file__).resolve().parents[1] / 'options' / 'zoo').glob('*.yml'))
FAMILIES = {'hint_attention', 'relational', 'spatial', 'decomposition', 'classification_analogs'}


def test_one_file_per_family():
    assert {f.stem for f in FILES} == FAMILIES


@pytest.mark.parametrize('path', FILES, ids=[f.stem for f in FILES])
def test_family_terms_build_and_run_on_the_files_taps(path):
    opt = load_yaml(str(path))
    names, terms = build_terms(opt['train']['distill_opts'])
    torch.manual_seed(0)
    student, teacher = build_network(dict(opt['network_g'])), build_network(dict(opt['network_t'])).eval()
    pairs = opt['distill']['pairs']
    taps_s = FeatureTaps(student, [p[0] for p in pairs])
    taps_t = FeatureTaps(teacher, [p[1] for p in pairs], role='teacher')
    batch = opt['datasets']['train']['batch_size_per_gpu']
    lq = torch.rand(2, 3, 8, 8)
    sr_s = student(lq)
    with torch.no_grad():
        sr_t = teacher(lq)
    d = DistillInputs(list(taps_s.outputs), list(taps_t.outputs), sr_s, sr_t, lq, gt=torch.rand_like(sr_t),
                      student=student)
    shapes = [tuple(f.shape[1:]) for f in d.feats_s], [tuple(f.shape[1:]) for f in d.feats_t]
    total = 0
    for name, term in zip(names, terms):
        assert batch >= term.min_batch, name
        term.setup(*shapes)
        value = term(d)
        assert torch.isfinite(value), name
        total = total + value
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
