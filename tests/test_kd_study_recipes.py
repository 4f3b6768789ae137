"""The KD study's recipes (scripts/kd_study.py): every one, the zoo's included, gives an option file that
passes the start-up checks, so no run of a multi-session study stops at its start on a typo."""
import pytest

from kd_util import REPO, make_teacher, write_images
from sr_kd.options import check_options

from scripts import kd_study


@pytest.fixture(scope='module')
def study_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp('study')
    data = write_images(root / 'train', n=20, size=(100, 100))  # the study's HR crop is 96
    return str(data), make_teacher(root / 'teacher.pth', num_feat=64, num_modules=6, upscale=4)


@pytest.mark.parametrize('recipe', sorted(kd_study.RECIPES))
def test_every_recipe_passes_the_option_check(recipe, study_inputs, monkeypatch):
    monkeypatch.chdir(REPO)
    data, teacher = study_inputs
    opt = kd_study.options(recipe, 0, 20000, data, teacher)
    # every 10th image in file-name order (img0, img1, img10, ..., img18, ...) is held out for validation
    assert opt['datasets']['val']['images'] == ['img0', 'img18']
    assert opt['datasets']['train']['exclude'] == ['img0', 'img18']
    check_options(opt, is_train=True)


def test_the_paper_crop_is_a_run_of_its_own(study_inputs, monkeypatch):
    """--crop 192,16 (the GPU runs) sets the HR crop and batch and names the run apart from the CPU study's."""
    monkeypatch.chdir(REPO)
    data, teacher = study_inputs
    opt = kd_study.options('fade_keep_output', 1, 10000, data, teacher, (96, 16))
    assert opt['name'] == 'kd_study_fade_keep_output_s1_10k_hr96b16'
    assert (opt['datasets']['train']['gt_size'], opt['datasets']['train']['batch_size_per_gpu']) == (96, 16)
    check_options(opt, is_train=True)
    assert kd_study.options('student', 1, 10000, data, teacher)['datasets']['train']['batch_size_per_gpu'] == 8
    with pytest.raises(SystemExit):
        kd_study.main(['--crop', '190,16', '--report'])  # not a multiple of the scale: refused before any run


def test_zoo_recipes_take_the_zoo_terms_at_their_calibrated_weights():
    from scripts.zoo_benchmark import METHODS
    terms = kd_study.RECIPES['pair_wise_released'][1]()
    assert terms == [{**METHODS['pair-wise (released)'][0], 'name': 'pair_wise_released', 'loss_weight': 0.365}]
    assert kd_study.RECIPES['at'][1]() == [{'type': 'ATLoss', 'name': 'at', 'loss_weight': 116}]
    assert 'sobolev' not in kd_study.RECIPES  # equal wall time only: not a study recipe


def test_a_run_of_another_budget_is_not_taken_for_finished(tmp_path, monkeypatch):
    """The 100k run of a seed is its own run: a finished 20k run of that recipe and seed does not skip it."""
    import argparse
    started = []
    monkeypatch.setattr(kd_study, 'finished_names', lambda: {'kd_study_student_s0_20k'})
    monkeypatch.setattr(kd_study, 'start', lambda run, args: started.append(run) or (_Done(), {}))
    monkeypatch.setattr(kd_study, 'record', lambda *a: None)
    args = argparse.Namespace(iters=100000, jobs=2, root=str(tmp_path), crop=None)
    kd_study.run_plan(['student:0', 'imdn_kd:0'], args)
    assert started == ['student:0', 'imdn_kd:0']
    started.clear()
    kd_study.run_plan(['student:0'], argparse.Namespace(iters=20000, jobs=2, root=str(tmp_path), crop=None))
    assert started == []
    # nor does it at another crop and batch (the GPU's runs)
    kd_study.run_plan(['student:0'], argparse.Namespace(iters=20000, jobs=2, root=str(tmp_path), crop=(192, 16)))
    assert started == ['student:0']


class _Done:
    returncode = 0

    def poll(self):
        return 0


def test_a_gpu_machines_rows_are_added_with_their_test_sets_evaluated_here(tmp_path, monkeypatch, capsys):
    """--import-device: the rows scripts/kd_study_gpu.sh sent back (no test sets there) get Set5/Set14 from
    the weights it sent, evaluated here, and go to results.jsonl once."""
    import json
    import tarfile

    from sr_kd.jsonl import read_rows
    name = 'kd_study_student_s0_10k_hr192b16'
    models = tmp_path / 'device' / name / 'models'
    models.mkdir(parents=True)
    make_teacher(models / 'net_g_latest.pth', num_feat=8, num_modules=1, upscale=4)
    sent = tmp_path / 'files'
    sent.mkdir()
    stopped = tmp_path / 'device' / 'kd_study_imdn_kd_s0_10k_hr192b16'  # the deadline stopped it: curve only
    stopped.mkdir()
    (stopped / 'val_metrics.jsonl').write_text(json.dumps({'iter': 3000, 'student': {'psnr': 27.5, 'ssim': 0.75}}) + '\n')
    with tarfile.open(sent / 'runs.tar', 'w') as tar:
        tar.add(tmp_path / 'device' / name, arcname=f'./{name}')
        tar.add(stopped, arcname=f'./{stopped.name}')
    row = {'run': 'student:0', 'recipe': 'student', 'seed': 0, 'iters': 10000, 'name': name, 'sec_per_iter': 0.02,
           'curve': [[10000, 28.0, 0.77]], 'test': {}, 'machine': 'NVIDIA H100', 'crop': [192, 16]}
    (sent / 'rows.jsonl').write_text(json.dumps(row) + '\n')
    hr = write_images(tmp_path / 'Set5' / 'HR', n=2, size=(48, 40))
    monkeypatch.setattr(kd_study, 'benchmark_sets', lambda: [('Set5', str(hr), None)])
    monkeypatch.setattr(kd_study, 'RESULTS', str(tmp_path / 'results.jsonl'))
    for _ in range(2):  # a second import adds nothing
        kd_study.import_device(str(sent), str(tmp_path / 'root'))
    assert 'kd_study_imdn_kd_s0_10k_hr192b16: not finished, not added; validation PSNR by iteration: 3000 27.500' \
        in capsys.readouterr().out
    rows = read_rows(str(tmp_path / 'results.jsonl'))
    assert [r['name'] for r in rows] == [name] and rows[0]['machine'] == 'NVIDIA H100'
    assert 5 < rows[0]['test']['Set5']['psnr'] < 60  # evaluated here, on the sent weights
    with pytest.raises(SystemExit, match='lacks rows.jsonl or runs.tar'):
        kd_study.main(['--import-device', str(tmp_path / 'root')])  # one line, before any work
