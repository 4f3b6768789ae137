"""The option-file schema (sr_kd/schema.py): misspelt keys and wrong types refused in one line, every option
file in the repository valid, the documents generated from it up to date, and a new distillation loss
picked up without editing any list."""
import copy
import glob
import json

import pytest

from kd_util import REPO, assert_one_line_error, run_cli, tiny_options, write_options
from sr_kd import schema, schema_docs
from sr_kd.errors import SRKDError
from sr_kd.options import check_options, load_yaml

REFUSED = {  # each once ran with exit 0, doing something other than what the file said
    'techer': (lambda o: o['distill'].update(techer='offline'),
               'distill.techer is not an option (did you mean: teacher'),
    'fades': (lambda o: o['distill'].update(fades=[0.1, 0.3]), 'distill.fades is not an option (did you mean: fade?)'),
    'teacher_precison': (lambda o: o['distill'].update(teacher_precison='bf16'),
                         'distill.teacher_precison is not an option (did you mean: teacher_precision'),
    'a term key': (lambda o: o['train']['distill_opts'][0].update(stats='max'),
                   'train.distill_opts[0].stats is not an option (did you mean: stat?)'),
    'a term type': (lambda o: o['train']['distill_opts'][0].update(type='FeatureStatLoss'),
                    "train.distill_opts[0].type: 'FeatureStatLoss' is not a distillation loss (did you mean: "
                    'FeatureStatsLoss'),
    "p: '2'": (lambda o: o['train']['distill_opts'][0].update(p='2'), "train.distill_opts[0].p: '2' is not valid"),
    'level_weights as text': (lambda o: o['train']['distill_opts'][0].update(level_weights='1,2'),
                              "train.distill_opts[0].level_weights: '1,2' is not valid: Input should be a valid list"),
    'a dataset key': (lambda o: o['datasets']['train'].update(gt_sise=16),
                      'datasets.train.gt_sise is not an option (did you mean: gt_size?)'),
    'a top-level section': (lambda o: o.update(distil=o.pop('distill')), 'distil is not an option (did you mean: distill'),
    'nonfinite': (lambda o: o['train'].update(nonfinite='skp'), "train.nonfinite: 'skp' is not valid: Input should be "
                                                                "'stop' or 'skip'"),
    'save_safetensors': (lambda o: o['logger'].update(save_safetensors='yes'), 'logger.save_safetensors'),
    'a capped fade': (lambda o: o['distill'].update(fade={'fraction': [0.1, 0.3], 'at_mots': [2000, 6000]}),
                      'at_mots is not an option (did you mean: at_most?)'),
    # a mapping is not told it should be a list (the other form of fade): only what is wrong inside it
    'a capped fade half given': (lambda o: o['distill'].update(fade={'fraction': [0.1, 0.3]}),
                                 "distill.fade: {'fraction': [0.1, 0.3]} is not valid: at_most: Field required"),
    'pairs': (lambda o: o['distill'].update(pairs=[['IMDB1']]), 'distill.pairs: [[\'IMDB1\']] is not valid'),
}


@pytest.mark.parametrize('case', REFUSED)
def test_the_schema_refuses_in_one_line(tmp_path, case):
    mutate, says = REFUSED[case]
    opt = tiny_options(tmp_path)
    mutate(opt)
    with pytest.raises(SRKDError) as info:
        check_options(opt)
    assert says in str(info.value) and '\n' not in str(info.value), str(info.value)


def test_a_misspelt_key_stops_the_cli_before_any_work(tmp_path):
    opt = tiny_options(tmp_path)
    REFUSED['techer'][0](opt)
    assert_one_line_error(run_cli(['sr_kd/train.py', '-opt', write_options(tmp_path / 'x.yml', opt)], tmp_path),
                          'distill.techer is not an option')
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.parametrize('path', sorted(glob.glob(str(REPO / 'options' / '**' / '*.yml'), recursive=True)),
                         ids=lambda p: p.split('/options/')[-1])
def test_every_option_file_of_the_repository_fits_the_schema(path):
    schema.validate(load_yaml(path))


def test_the_documents_are_generated_from_the_schema():
    """docs/options.md and docs/options.schema.json are what `python -m sr_kd.schema_docs` writes."""
    assert (REPO / 'docs' / 'options.md').read_text() == schema_docs.markdown()
    assert (REPO / 'docs' / 'options.schema.json').read_text() == schema_docs.json_text()
    js = json.loads(schema_docs.json_text())
    assert 'distill' in js['properties'] and 'FeatureStatsLoss' in js['$defs']


def test_a_new_distillation_loss_is_picked_up_without_editing_a_list(tmp_path):
    """Registering a DistillLoss is all it takes: the schema, its documents and the check know it."""
    from basicsr.utils.registry import LOSS_REGISTRY

    from sr_kd.losses.base import DistillLoss

    class PlantedLoss(DistillLoss):
        """A term made up by this test.

        Args:
            tau: a temperature.
        """
        uses_features = False

        def __init__(self, tau=1.0, loss_weight=1.0):
            super().__init__(loss_weight)
            self.tau = tau

        def compute(self, d):
            return (d.sr_s - d.sr_t).abs().mean() * self.tau

    LOSS_REGISTRY.register(PlantedLoss)
    try:
        assert '### `PlantedLoss`' in schema_docs.markdown() and '| `tau` | int or float | `1.0` | a temperature |' \
            in schema_docs.markdown()
        opt = tiny_options(tmp_path)
        opt['train']['distill_opts'] = [{'type': 'PlantedLoss', 'tau': 0.5}]
        check_options(copy.deepcopy(opt))
        opt['train']['distill_opts'][0]['tua'] = 1
        with pytest.raises(SRKDError, match=r'distill_opts\[0\]\.tua is not an option \(did you mean: tau'):
            check_options(opt)
    finally:
        LOSS_REGISTRY._obj_map.pop('PlantedLoss')


def test_integers_are_numbers_but_text_and_booleans_are_not(tmp_path):
    opt = tiny_options(tmp_path)
    opt['train']['distill_opts'][1]['loss_weight'] = 1  # an int where 1.0 is the default
    schema.validate(opt)
    for bad in ('1', True):
        opt['train']['distill_opts'][1]['loss_weight'] = bad
        with pytest.raises(SRKDError, match='loss_weight'):
            schema.validate(opt)
