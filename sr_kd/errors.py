"""The project's error for mistakes a user can make (bad option file, missing file, wrong checkpoint).

Entry points catch it, print its one-line message and exit with status 2, without a traceback.
Programming errors keep raising normally.
"""
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, Tuple


class SRKDError(Exception):
    """A user-facing error: its message is one line that says what to fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it ends as Ctrl-C does (what it wrote kept, its lock
    released, one line) with exit status 143."""


def end_like_ctrl_c_on_sigterm() -> None:
    """Install the SIGTERM handler that raises Terminated (entry points call it first)."""
    import signal

    def handler(signum, frame):
        raise Terminated()
    signal.signal(signal.SIGTERM, handler)


def interrupted(e: KeyboardInterrupt) -> Tuple[str, int]:
    """(word, exit status) for a KeyboardInterrupt: Ctrl-C 130, SIGTERM 143."""
    return ('terminated', 143) if isinstance(e, Terminated) else ('interrupted', 130)


def close_matches(name: object, choices: Iterable[object], n: int = 3, cutoff: float = 0.5) -> str:
    """' (did you mean: a, b?)' for a misspelt name, or '' when nothing is close."""
    import difflib
    hits = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=cutoff)
    return f" (did you mean: {', '.join(hits)}?)" if hits else ''


@contextmanager
def exit_on_user_error(prog: str = 'sr_kd') -> Iterator[None]:
    """Turn SRKDError (and a YAML syntax error) into one line on stderr and exit status 2."""
    try:
        yield
    except SRKDError as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        sys.exit(2)
