"""One owner per rule: a rule the start-up check (options.py) and the model both enforce is written once
(sr_kd/rules.py) and both call it, so they cannot drift apart; distill/head.py and options.py do not
import each other."""
import ast
from pathlib import Path

import pytest

from sr_kd.errors import SRKDError
from sr_kd import rules

PKG = Path(__file__).resolve().parents[1] / 'sr_kd'
RULE_TEXTS = ["train.nonfinite must be", 'distill.pairs must be', 'path.pretrain_network_t is missing',
              'scales differ', 'steps had a NaN/inf loss', 'unknown {what}']


@pytest.mark.parametrize('text', RULE_TEXTS)
def test_each_rule_is_written_once(text):
    owners = [p.relative_to(PKG).as_posix() for p in PKG.rglob('*.py') if text in p.read_text()]
    assert owners == ['rules.py'], owners


def _imports(path):
    tree = ast.parse((PKG / path).read_text())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_head_does_not_import_options():
    assert 'sr_kd.options' not in _imports('distill/head.py')


def test_the_start_up_check_and_the_model_both_enforce_the_rule(tmp_path):
    """train.nonfinite: the start-up check (the schema, from rules.NONFINITE_MODES) refuses a bad value, and so
    does the model itself when one reaches it without that check (a user's own BasicSR code): built here from
    basicsr's parsed options, with no start-up check, so the test fails if the model stops calling the rule."""
    import sys

    from basicsr.models import build_model
    from basicsr.utils.options import parse_options

    from kd_util import tiny_options, write_options
    from sr_kd.options import check_options
    opt = tiny_options(tmp_path, nonfinite='sometimes')
    with pytest.raises(SRKDError, match=r"train.nonfinite: 'sometimes' is not valid: Input should be 'stop' or 'skip'"):
        check_options(opt)
    argv, sys.argv = sys.argv, ['train.py', '-opt', write_options(tmp_path / 'kd.yml', opt)]
    try:
        parsed, _ = parse_options(str(tmp_path), is_train=True)
    finally:
        sys.argv = argv
    with pytest.raises(SRKDError, match=r"train.nonfinite must be one of 'stop', 'skip', not 'sometimes'"):
        build_model(parsed)
    for mode in rules.NONFINITE_MODES:  # and both take every mode the rule takes
        check_options(tiny_options(tmp_path, nonfinite=mode))
        assert rules.nonfinite_policy({'nonfinite': mode})[0] == mode


def test_ground_truth_is_the_dataset_class_word(tmp_path, monkeypatch):
    """'no ground truth' is one rule read from the dataset class (``has_gt = False``), not a type name
    compared in several places: a user's own no-GT dataset gets PlainImageDataset's checks."""
    from basicsr.utils.registry import DATASET_REGISTRY
    from kd_util import tiny_options
    from sr_kd.data.plain_dataset import PlainImageDataset
    from sr_kd.options import check_options

    class FramesDataset(PlainImageDataset):
        pass
    monkeypatch.setitem(DATASET_REGISTRY._obj_map, 'FramesDataset', FramesDataset)
    opt = tiny_options(tmp_path)
    assert rules.train_has_gt(opt)
    opt['datasets']['train'].update(type='FramesDataset', dataroot_lq=opt['datasets']['train'].pop('dataroot_gt'))
    assert not rules.train_has_gt(opt)
    with pytest.raises(SRKDError, match='compare with ground truth, which a FramesDataset does not have'):
        check_options(opt)
