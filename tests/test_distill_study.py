"""The distill study's run names: the report reads recipe, budget and student back from them."""
from scripts.distill_study import parse_name, run_name


def test_run_names_are_read_back_as_written():
    assert parse_name(run_name('init-offline-noaug', 30, 'compact-16x4', 0)) == \
        ('init-offline-noaug', 30.0, 'compact-16x4', 0)
    assert parse_name(run_name('output-online', 120, 'compact-32x8', 2))[1] == 120
    assert parse_name('target60_auto') is None  # a run named by hand
