"""The ``sr-kd`` console script. Each subcommand lives in its own room; this file only dispatches."""
import argparse
import sys
from typing import List, Optional, Sequence, Tuple

from sr_kd.errors import end_like_ctrl_c_on_sigterm, exit_on_user_error, interrupted

def _constants(path):
    """The module-level ``NAME = 'text'`` / ``NAME = 3`` constants of a source file, read without importing it."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) for t in node.targets if isinstance(t, ast.Name)}


def subcommands() -> List[Tuple[str, str, str]]:
    """[(subcommand, module, help)] of every ``*_cmd.py`` in sr_kd/commands/, in their ``ORDER``: a command is
    one such file with ``HELP``, ``add_arguments(parser)`` and ``run(args)``. Read from the source, so that
    ``sr-kd X`` imports only X's module."""
    import os

    from sr_kd import commands
    found = []
    for folder in commands.__path__:
        for fname in sorted(os.listdir(folder)):
            if fname.endswith('_cmd.py'):
                consts = _constants(os.path.join(folder, fname))
                found.append((consts.get('ORDER', 99), fname[:-len('_cmd.py')].replace('_', '-'),
                              f'sr_kd.commands.{fname[:-3]}', consts.get('HELP', '')))
    return [(name, module, text) for _, name, module, text in sorted(found)]


class _HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, unless the help already says it or there is none."""

    def _get_help_string(self, action):
        text = action.help or ''
        if 'default' not in text and action.default not in (None, False, argparse.SUPPRESS) \
                and action.option_strings:
            text += f' (default: {action.default})'
        return text


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand's module is imported (the others are listed by name
    and help, so ``sr-kd --help`` and ``sr-kd X ...`` import no other subcommand and no torch)."""
    import importlib

    from sr_kd import __version__
    parser = argparse.ArgumentParser(prog='sr-kd', description='Knowledge distillation for super-resolution.')
    parser.add_argument('--version', action='version', version=f'sr-kd {__version__}')
    sub = parser.add_subparsers(dest='command', required=True)
    for name, module, help_text in subcommands():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=_HelpWithDefaults)
        if only is None or only == name:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith('-')), '')
    args = build_parser(only=chosen).parse_args(argv)
    end_like_ctrl_c_on_sigterm()
    with exit_on_user_error('sr-kd'):
        import sr_kd
        sr_kd.load()  # repairs + registries before any basicsr use (the console script defers them)
        try:
            return args._run(args) or 0
        except KeyboardInterrupt as e:
            word, status = interrupted(e)
            print(f'sr-kd: {word}{getattr(args, "_interrupted_hint", "")}', file=sys.stderr)
            return status
        except BrokenPipeError:
            return _end_on_closed_stdout()


def _end_on_closed_stdout():
    """``sr-kd upscale ... | head -1``: the reader has gone, so stop as a shell tool does on SIGPIPE, quietly
    (no traceback, and none at exit when Python flushes stdout: it is pointed at /dev/null), status 141."""
    import os
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


if __name__ == '__main__':
    sys.exit(main())
