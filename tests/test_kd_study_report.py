"""The KD study's budget section (issue 29): the default's gain over the student alone, per seed and
iteration, from finished runs and runs still in progress, kept apart by budget."""
from scripts import kd_study_report as report


def _row(recipe, seed, iters, curve, set5):
    return {'recipe': recipe, 'seed': seed, 'iters': iters, 'name': f'kd_study_{recipe}_s{seed}_{iters // 1000}k',
            'curve': [(i, p, 0.8) for i, p in curve], 'test': {'Set5': {'psnr': set5}}, 'sec_per_iter': 0.1,
            'machine': 'm'}


def test_gain_is_the_default_minus_the_student_per_seed_and_budget(tmp_path):
    every = [_row('student', 0, 20000, [(10000, 27.0), (20000, 27.5)], 30.0),
             _row('fade_keep_output', 0, 20000, [(10000, 27.2), (20000, 27.6)], 30.3),
             _row('student', 1, 20000, [(10000, 27.1), (20000, 27.4)], 30.1),  # no default of seed 1: left out
             _row('student', 0, 100000, [(50000, 28.0), (100000, 28.2)], 31.0)]
    # the default's 100k run is still going: its curve comes from the progress, read to where it is
    progress = {'kd_study_imdn_kd_s0_100k': ([(50000, 28.05, 0.8)], 0.1),
                'kd_study_fade_keep_output_s0_100k': ([(10000, 27.5, 0.8), (50000, 28.1, 0.8)], 0.1)}
    assert [(i, round(g, 6), n) for i, g, n in report.gain_curve(every, progress, 20000)] == \
        [(10000, 0.2, 1), (20000, 0.1, 1)]
    # the default at 100,000 is fade_keep_output (its fade capped at 2,000-6,000 iterations)
    assert [(i, round(g, 6), n) for i, g, n in report.gain_curve(every, progress, 100000)] == [(50000, 0.1, 1)]
    assert {k: (round(g, 6), n) for k, (g, n) in report.test_gains(every, 20000, ['Set5']).items()} == \
        {'Set5': (0.3, 1)}
    assert report.test_gains(every, 100000, ['Set5']) == {}  # the default has not finished there
    lines = report.budget_section(every, progress, str(tmp_path), ['Set5'])
    assert [(i, round(g, 6)) for i, g, _ in report.gain_curve(every, progress, 100000, 'imdn_kd')] == \
        [(50000, 0.05)]  # another recipe at the longer budget, against the same student
    assert '| 20,000 | fade_keep_output (the default) | 1 | +0.100 dB | +0.300 |' in lines
    assert '| 100,000 | fade_keep_output (the default) | 1 | +0.100 dB (at 50,000, running) | - |' in lines
    assert '| 100,000 | imdn_kd | 1 | +0.050 dB (at 50,000, running) | - |' in lines
    assert '| imdn_kd | +0.050 |' in lines and '| fade_keep_output | +0.100 |' in lines  # the gain by iteration
    assert any(line.startswith('Machine of the longer runs: m. Load: one thread a run') for line in lines)
    assert (tmp_path / 'gain.png').stat().st_size > 0


def test_no_budget_section_before_a_longer_run_has_a_point(tmp_path):
    every = [_row('student', 0, 20000, [(20000, 27.5)], 30.0), _row('fade_keep_output', 0, 20000, [(20000, 27.6)], 30.3)]
    assert report.budget_section(every, {}, str(tmp_path), ['Set5']) == []


def test_run_names_are_read_back_as_written():
    from scripts.kd_names import parse_run_name, run_name
    assert parse_run_name(run_name('output_offline', 2, 100000)) == ('output_offline', 2, 100000, None)
    assert parse_run_name(run_name('fade_keep_output', 1, 10000, (192, 16))) == ('fade_keep_output', 1, 10000, (192, 16))
    assert parse_run_name(run_name('student', 0, 20000)).recipe == 'student'
    assert parse_run_name('kd_study_student_s0_20k_archived_20261201') is None
    assert parse_run_name('teacher_cache') is None


def test_a_budget_without_a_named_default_still_gets_its_tables(tmp_path):
    """Runs at a budget with no default named for it (DEFAULT_AT) have no gain rows, but their tables stand."""
    every = [_row('student', 0, 20000, [(20000, 27.5)], 30.0), _row('fade_keep_output', 0, 20000, [(20000, 27.6)], 30.3),
             _row('student', 0, 100000, [(100000, 28.2)], 31.0), _row('imdn_kd', 0, 100000, [(100000, 28.3)], 31.2),
             _row('student', 0, 40000, [(40000, 28.0)], 30.8)]
    lines = report.budget_section(every, {}, str(tmp_path), ['Set5'])
    assert '### 100,000 iterations: equal iterations' in lines
    assert '### 40,000 iterations: equal iterations' in lines


def test_runs_at_another_crop_get_their_own_table_and_stay_out_of_the_cpu_tables(tmp_path, monkeypatch):
    """The GPU's runs (HR 192, batch 16) are reported apart: neither in the 20k tables nor the budget section."""
    import json
    from scripts import kd_study
    cpu = [_row('student', 0, 20000, [(20000, 27.5)], 30.0), _row('fade_keep_output', 0, 20000, [(20000, 27.6)], 30.3)]
    gpu = [dict(_row('student', 0, 20000, [(20000, 28.0)], 31.0), crop=[192, 16], machine='NVIDIA H100'),
           dict(_row('fade_keep_output', 0, 20000, [(20000, 28.1)], 31.4), crop=[192, 16], machine='NVIDIA H100')]
    for r in gpu:
        r['name'] += '_hr192b16'
    results = tmp_path / 'results.jsonl'
    results.write_text(''.join(json.dumps(r) + '\n' for r in cpu + gpu))
    page = tmp_path / 'docs' / 'kd_study.md'
    page.parent.mkdir()
    monkeypatch.setattr(report, 'REPO', str(tmp_path))
    monkeypatch.setattr(report, 'write_zoo_section', lambda *a: None)
    monkeypatch.setattr(kd_study, 'PROGRESS', str(tmp_path / 'none'))
    report.write_report(str(results), str(tmp_path), kd_study, str(tmp_path / 'no_root'))
    text = page.read_text()
    cpu_part, gpu_part = text.split('## HR crop 192, batch 16: 20,000 iterations on a GPU')
    assert '| fade_keep_output | 0 | 0.100 | 1.00x | 27.600 | 30.300 | +0.300 |' in cpu_part
    assert '28.1' not in cpu_part and 'NVIDIA' not in cpu_part
    assert 'Machine: NVIDIA H100' in gpu_part
    assert '| fade_keep_output | 0 | 0.100 | 1.00x | 28.100 | 31.400 | +0.400 |' in gpu_part
