"""The run logs written a row at a time (``losses.jsonl``, ``val_metrics.jsonl``): the one writer and the one
reader. These files are appended, not written atomically, so a kill can tear their last line; every
reader (resume, ``report``, ``distill``, the studies) must read past it rather than fail on a finished run.
"""
import json
import os

from sr_kd.errors import SRKDError


def append_row(path: str, row: dict) -> None:
    """Append ``row`` as one JSON line (flushed: a kill loses at most this line, never an earlier one)."""
    with open(path, 'a') as f:
        f.write(json.dumps(row) + '\n')
        f.flush()


def read_rows(path: str) -> list:
    """The rows of ``path`` in file order ([] when it does not exist). A last line that is not JSON is a
    write torn by a kill and is skipped; a bad line before the end is damage, refused naming the line."""
    if not os.path.isfile(path):
        return []
    with open(path, errors='replace') as f:
        lines = f.read().split('\n')
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if any(rest.strip() for rest in lines[number:]):
                raise SRKDError(f'{path}: line {number} is not JSON (a damaged log; remove the line to go on)')
    return rows
