"""``val.keep_best: METRIC``: the best student so far kept beside the checkpoints (``models/net_g_best.pth``)
with ``best.json`` saying which iteration and value, chosen from the run's validation rows
(``val_metrics.jsonl``) and kept true across a resume."""
import json
import math
import os
import shutil
from typing import Callable

from sr_kd.atomic import atomic_path, atomic_write_text
from sr_kd.jsonl import read_rows


def best_row(val_log: str, dataset: str, metric: str) -> dict:
    """The row of ``dataset`` with the highest student ``metric`` (the earliest of equals), as {'iter', 'value'}."""
    best = {'iter': None, 'value': -math.inf}
    for row in read_rows(val_log):
        if row.get('dataset') == dataset and row['student'][metric] > best['value']:
            best = {'iter': row['iter'], 'value': row['student'][metric]}
    return best


def keep_if_best(experiment: str, val_log: str, dataset: str, metric: str, current_iter: int, value: float,
                 save_best: Callable[[], None]) -> None:
    """After a validation of ``dataset`` at ``current_iter``: when it is the best row so far, ``save_best()``
    writes net_g_best.pth and best.json says so."""
    if best_row(val_log, dataset, metric)['iter'] != current_iter:
        return
    save_best()
    atomic_write_text(os.path.join(experiment, 'best.json'),
                      json.dumps({'iter': current_iter, 'dataset': dataset, 'metric': metric, 'value': value}) + '\n')


def forget_later_best(experiment: str, models: str, val_log: str, resumed_iter: int) -> None:
    """A best student found after the checkpoint a run resumes from is found again (or not) by the resumed
    run: until then the best is the best of the rows kept, whose checkpoint exists."""
    best_file = os.path.join(experiment, 'best.json')
    try:
        with open(best_file) as f:
            best = json.load(f)
    except (OSError, ValueError):
        return
    if best.get('iter', 0) <= resumed_iter:
        return
    row = best_row(val_log, best['dataset'], best['metric']) if os.path.isfile(val_log) else None
    kept = os.path.join(models, f'net_g_{row["iter"]}.pth') if row and row['iter'] is not None else None
    if kept and os.path.isfile(kept):
        with atomic_path(os.path.join(models, 'net_g_best.pth'), keep_ext=False) as tmp:
            shutil.copyfile(kept, tmp)
        atomic_write_text(best_file, json.dumps({**best, 'iter': row['iter'], 'value': row['value']}) + '\n')
    else:
        for path in (best_file, os.path.join(models, 'net_g_best.pth')):
            if os.path.exists(path):
                os.remove(path)
