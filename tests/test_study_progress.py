"""An unfinished study run's progress kept in the repository (scripts/study_core.py): what resume needs,
and nothing half-written left behind when two savers of the same run meet."""
import os

from scripts import study_core

_rmtree = study_core.shutil.rmtree  # the real one, for the patched saver below


def _run(tmp_path, it=3000):
    exp = tmp_path / 'exp'
    (exp / 'training_states').mkdir(parents=True)
    (exp / 'models').mkdir()
    (exp / 'training_states' / f'{it}.state').write_bytes(b's')
    (exp / 'models' / f'net_g_{it}.pth').write_bytes(b'w')
    (exp / 'val_metrics.jsonl').write_text('{}\n')
    return exp


def test_the_newest_state_is_kept_and_put_back(tmp_path):
    exp, keep = _run(tmp_path), tmp_path / 'progress' / 'run'
    assert study_core.keep_progress(str(exp), str(exp), str(keep)) == 3000
    assert sorted(os.listdir(keep)) == ['models', 'training_states', 'val_metrics.jsonl']
    assert study_core.restore_progress(str(keep), str(tmp_path / 'elsewhere'))
    assert (tmp_path / 'elsewhere' / 'training_states' / '3000.state').read_bytes() == b's'


def test_two_savers_at_once_leave_no_temporary(tmp_path, monkeypatch):
    """Another saver (the study driver and a keep loop both save every few minutes) puts its copy in place
    between this one's removal of the old copy and its rename: the other copy stands and no '.partial'
    folder is left in the repository (one nearly was committed on 2026-12-07)."""
    exp, keep = _run(tmp_path), tmp_path / 'progress' / 'run'
    study_core.keep_progress(str(exp), str(exp), str(keep))
    monkeypatch.setattr(study_core.shutil, 'rmtree', lambda path, ignore_errors=False: None
                        if str(path) == str(keep) else _rmtree(path, ignore_errors=ignore_errors))
    assert study_core.keep_progress(str(exp), str(exp), str(keep)) is None
    assert os.listdir(keep.parent) == ['run']



def test_the_report_lists_no_half_written_copy_as_a_run(tmp_path, monkeypatch):
    """A '.partial<pid>' folder left by a saver that was stopped mid-copy is not a run in progress (one was
    listed as a run of its own in docs/kd_study.md on 2026-12-07)."""
    from scripts import kd_study, kd_study_report
    exp = _run(tmp_path)
    (exp / 'val_metrics.jsonl').write_text('{"iter": 5000, "student": {"psnr": 27.5, "ssim": 0.75}}\n')
    progress = tmp_path / 'progress'
    for name in ('kd_study_fade_keep_output_s1_100k', 'kd_study_fade_keep_output_s1_100k.partial18327'):
        _rmtree(progress / name, ignore_errors=True)
        study_core.shutil.copytree(exp, progress / name)
    monkeypatch.setattr(kd_study, 'PROGRESS', str(progress))
    runs = kd_study_report.in_progress(set(), kd_study, str(tmp_path / 'no_root'))
    assert list(runs) == ['kd_study_fade_keep_output_s1_100k']
