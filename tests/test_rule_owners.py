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


def test_start_up_check_and_model_say_the_same_line(tmp_path):
    """The same rule object raises for both callers: options' check and the model's constructor."""
    from kd_util import tiny_options
    from sr_kd.options import check_options
    opt = tiny_options(tmp_path, nonfinite='sometimes')
    with pytest.raises(SRKDError) as by_check:
        check_options(opt)
    with pytest.raises(SRKDError) as by_rule:
        rules.nonfinite_policy(opt['train'])
    assert str(by_check.value) == str(by_rule.value) == \
        "train.nonfinite must be one of 'stop', 'skip', not 'sometimes'"
