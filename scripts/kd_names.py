"""The KD study's run names, written and read in one place: the study names its experiments with them and
the report finds a run's recipe, seed and budget in them (the report must not import the study)."""
import re
from typing import NamedTuple, Optional

_PATTERN = re.compile(r'kd_study_(?P<recipe>.+)_s(?P<seed>\d+)_(?P<k>\d+)k$')


class RunName(NamedTuple):
    recipe: str
    seed: int
    iters: int


def run_name(recipe: str, seed: int, iters: int) -> str:
    """The experiment name of a run: recipe, seed and budget (a 100k run of a seed is not its 20k run)."""
    return f'kd_study_{recipe}_s{seed}_{iters // 1000}k'


def parse_run_name(name: str) -> Optional[RunName]:
    """(recipe, seed, iterations) of a study run's name; None for any other folder name."""
    m = _PATTERN.match(name)
    return RunName(m['recipe'], int(m['seed']), int(m['k']) * 1000) if m else None
