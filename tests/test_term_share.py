"""scripts/term_share.py: the share it prints is the weighted terms' push alone (no task loss in it), and a
checkpoint's share is measured at that checkpoint's weights, not at the initialisation's."""
import pytest

from kd_util import tiny_options, write_options

from scripts import term_share


def _run_folder(root, weight):
    """A run folder as training leaves it: its option copy, a student checkpoint at iteration 4 (the
    initial weights moved) and a training state (output distillation has no parameters of its own)."""
    import torch

    import sr_kd  # noqa: F401
    from sr_kd.archs.imdn_arch import IMDN
    name = f'share_w{weight:g}'
    run = root / name
    (run / 'models').mkdir(parents=True)
    (run / 'training_states').mkdir()
    opt = tiny_options(root, name=name, distill_opts=[
        {'type': 'OutputDistillLoss', 'name': 'out', 'criterion': 'l1', 'loss_weight': weight}])
    write_options(run / f'{name}.yml', opt)
    torch.manual_seed(1)
    moved = IMDN(num_feat=8, num_modules=1, upscale=2)
    torch.save({'params': moved.state_dict()}, run / 'models' / 'net_g_4.pth')
    torch.save({'iter': 4, 'distill': {}, 'distill_own': {}}, run / 'training_states' / '4.state')
    return run


@pytest.mark.parametrize('iteration', [0, 4])
def test_share_is_the_weighted_terms_alone_at_that_checkpoint(tmp_path, iteration):
    one = term_share.shares(_run_folder(tmp_path, 1.0), [iteration], 2)[0]
    three = term_share.shares(_run_folder(tmp_path, 3.0), [iteration], 2)[0]
    # the task loss's push does not depend on the term's weight; the term's is linear in it (a task
    # term left in the "terms" measurement would break the factor 3)
    assert three[2] == pytest.approx(one[2], rel=1e-6)
    assert three[1] == pytest.approx(3 * one[1], rel=1e-5)
    assert one[1] > 0


def test_checkpoint_weights_are_the_ones_measured(tmp_path):
    run = _run_folder(tmp_path, 1.0)
    (_, t0, g0), (_, t4, g4) = term_share.shares(run, [0, 4], 2)
    assert g4 != pytest.approx(g0, rel=1e-3) and t4 != pytest.approx(t0, rel=1e-3)


def test_a_missing_checkpoint_is_one_line_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match=r'no checkpoint at iteration 2000 \(it has: 4\)'):
        term_share.shares(_run_folder(tmp_path, 1.0), [0, 2000], 2)
