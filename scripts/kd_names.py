"""The KD study's run names, written and read in one place: the study names its experiments with them and
the report finds a run's recipe, seed and budget in them (the report must not import the study)."""
import re
from typing import NamedTuple, Optional, Tuple

_PATTERN = re.compile(r'kd_study_(?P<recipe>.+)_s(?P<seed>\d+)_(?P<k>\d+)k(?:_hr(?P<hr>\d+)b(?P<batch>\d+))?$')


class RunName(NamedTuple):
    recipe: str
    seed: int
    iters: int
    crop: Optional[Tuple[int, int]] = None  # (HR crop, batch) where not the study's 96 / 8 (the GPU runs)


def run_name(recipe: str, seed: int, iters: int, crop: Optional[Tuple[int, int]] = None) -> str:
    """The experiment name of a run: recipe, seed and budget (a 100k run of a seed is not its 20k run), and
    the HR crop and batch where they are not the study's (``_hr192b16``)."""
    return f'kd_study_{recipe}_s{seed}_{iters // 1000}k' + (f'_hr{crop[0]}b{crop[1]}' if crop else '')


def parse_run_name(name: str) -> Optional[RunName]:
    """(recipe, seed, iterations, crop) of a study run's name; None for any other folder name."""
    m = _PATTERN.match(name)
    if not m:
        return None
    return RunName(m['recipe'], int(m['seed']), int(m['k']) * 1000,
                   (int(m['hr']), int(m['batch'])) if m['hr'] else None)
