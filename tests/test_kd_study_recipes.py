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
    args = argparse.Namespace(iters=100000, jobs=2, root=str(tmp_path))
    kd_study.run_plan(['student:0', 'imdn_kd:0'], args)
    assert started == ['student:0', 'imdn_kd:0']
    started.clear()
    kd_study.run_plan(['student:0'], argparse.Namespace(iters=20000, jobs=2, root=str(tmp_path)))
    assert started == []


class _Done:
    returncode = 0

    def poll(self):
        return 0
