"""The code's structure: no import cycle among the modules of sr_kd/ and scripts/ (read from their source,
imports inside functions included), an extension point that finds its entries (a new ``*_backend.py``
is picked up without editing a list), and type hints on every public function of sr_kd/ and scripts/."""
import ast
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _modules():
    """{dotted module name: path} of the packages sr_kd and scripts."""
    mods = {}
    for path in [*(REPO / 'sr_kd').rglob('*.py'), *(REPO / 'scripts').glob('*.py')]:
        parts = list(path.relative_to(REPO).with_suffix('').parts)
        mods['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return mods


def _edges(name, path, mods):
    """The modules of ``mods`` that ``name`` imports anywhere in its source; ``from pkg import sub`` counts as
    importing pkg.sub alone when sub is a module."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                up = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(up + ([node.module] if node.module else []))
            subs = [f'{base}.{a.name}' for a in node.names if f'{base}.{a.name}' in mods]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(base)
    return {m for m in found if m in mods and m != name}


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, trail):
        state[node] = 'open'
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = 'done'
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle_in_sr_kd_and_scripts():
    mods = _modules()
    graph = {name: _edges(name, path, mods) for name, path in mods.items()}
    assert 'sr_kd.distill.teacher_cache' in graph['sr_kd.distill.teacher']  # the graph sees imports in functions
    assert 'scripts.zoo_benchmark' in graph['scripts.kd_study']  # and the scripts' imports of each other
    assert _cycle(graph) is None, ' -> '.join(_cycle(graph))


def test_scripts_are_a_package_that_edits_no_import_path():
    """Every script imports sr_kd and its siblings as packages (``python -m scripts.NAME`` from the
    repository root): none edits sys.path, none imports a sibling by its bare file name."""
    mods = _modules()
    bare = {p.stem for p in (REPO / 'scripts').glob('*.py')}
    for name, path in mods.items():
        if not name.startswith('scripts'):
            continue
        tree = ast.parse(path.read_text())
        edits = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == 'path'
                 and isinstance(n.value, ast.Name) and n.value.id == 'sys']
        assert not edits, f'{path.name}:{edits[0]} touches sys.path'
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & bare, f'{path.name} imports {imported & bare} by file name'
    assert (REPO / 'scripts' / '__init__.py').is_file()


def test_the_cycle_finder_finds_one():
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']


def test_a_new_backend_file_is_picked_up(tmp_path, monkeypatch):
    """One file declaring BACKEND is a backend: in the list --backend offers, its help and its checks."""
    from sr_kd import backends
    (tmp_path / 'planted_backend.py').write_text(textwrap.dedent('''
        from sr_kd.backends.base import Backend, Runner

        def prepare(model, info, precision, options, exact_tiles=False):
            return Runner(fn=model, backend='planted', precision=precision, autocast='fp32', eager=False)

        BACKEND = Backend('planted', ('fp32',), 'planted (made up by a test)', prepare,
                          missing=lambda: 'it is only a test')
    '''))
    monkeypatch.setattr(backends, '__path__', [*backends.__path__, str(tmp_path)])
    try:
        found = backends._discover()
    finally:
        sys.modules.pop('sr_kd.backends.planted_backend', None)
    assert list(found) == ['eager', 'aoti', 'onnxruntime', 'planted', 'auto']
    monkeypatch.setattr(backends, 'BACKENDS', found)
    monkeypatch.setattr(backends, 'NAMES', tuple(found))
    assert 'planted (made up by a test)' in backends.help_text()
    from sr_kd.errors import SRKDError
    with pytest.raises(SRKDError, match='--backend planted: it is only a test'):
        backends.check('planted', 'fp32')
    with pytest.raises(SRKDError, match='--backend planted runs fp32, not bf16'):
        backends.check('planted', 'bf16')


def test_a_new_command_file_is_picked_up(tmp_path, monkeypatch, capsys):
    """One ``*_cmd.py`` with HELP, add_arguments and run is a subcommand of sr-kd."""
    from sr_kd import cli, commands
    (tmp_path / 'planted_thing_cmd.py').write_text(textwrap.dedent('''
        """``sr-kd planted-thing``: made up by a test."""
        HELP = 'a command made up by a test'

        def add_arguments(p):
            p.add_argument('--times', type=int, default=2)

        def run(args):
            print('planted ' * args.times)
            return 0
    '''))
    monkeypatch.setattr(commands, '__path__', [*commands.__path__, str(tmp_path)])
    try:
        assert ('planted-thing', 'sr_kd.commands.planted_thing_cmd', 'a command made up by a test') \
            == cli.subcommands()[-1]
        assert cli.main(['planted-thing', '--times', '3']) == 0
        assert capsys.readouterr().out.split() == ['planted'] * 3
    finally:
        sys.modules.pop('sr_kd.commands.planted_thing_cmd', None)
    assert [name for name, _, _ in cli.subcommands()][:2] == ['eval', 'upscale']  # ORDER decides the rest


IMPORT_ALL = r'''
import importlib, inspect, pkgutil, sys
from pathlib import Path
repo = Path(sys.argv[1])
import sr_kd  # the torchvision stand-in only, so that basicsr imports here
import basicsr
for m in pkgutil.walk_packages(basicsr.__path__, 'basicsr.'):
    try:
        importlib.import_module(m.name)
    except Exception:
        pass


def snapshot():
    """id of every attribute of every basicsr module and of every class defined there."""
    seen = {}
    for name, mod in list(sys.modules.items()):
        if name.split('.')[0] != 'basicsr' or mod is None:
            continue
        for attr, val in list(vars(mod).items()):
            seen[(name, attr)] = id(val)
            if inspect.isclass(val) and val.__module__ == name:
                for k, v in list(vars(val).items()):
                    seen[(name, attr, k)] = id(v)
    return seen


before = snapshot()
names = [m.name for m in pkgutil.walk_packages(sr_kd.__path__, 'sr_kd.')]
names += sorted(f'scripts.{p.stem}' for p in (repo / 'scripts').glob('*.py') if p.stem != '__init__')
for name in names:
    importlib.import_module(name)
    after = snapshot()
    changed = sorted('.'.join(k) for k in before if k in after and after[k] != before[k])
    assert not changed, f'importing {name} changed basicsr: {changed[:5]}'
print('imported', len(names))
sr_kd.load()
changed = [k for k in before if snapshot().get(k) != before[k]]
print('load() changed', len(changed))
'''


@pytest.mark.slow
def test_importing_any_module_changes_nothing_in_basicsr_until_load():
    """Every module of sr_kd/ and scripts/, imported one after the other in a fresh interpreter, leaves every
    basicsr function and class as it was; sr_kd.load() is what applies the repairs (and the check sees them)."""
    import subprocess
    proc = subprocess.run([sys.executable, '-c', IMPORT_ALL, str(REPO)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split('\n')
    assert lines[0].startswith('imported ') and int(lines[0].split()[1]) > 80
    assert int(lines[1].split()[-1]) >= 5  # load() does patch: the snapshot would have seen it


# ----- type hints ---------------------------------------------------------------------------------------


def _missing_hints(source, where):
    """'where:line name' of every public function of ``source`` without full type hints: functions at module
    level and methods of public classes (nested ones too) whose name does not start with '_', plus __init__
    and __call__; each parameter but self/cls annotated (*args/**kwargs exempt), and the return (but
    __init__'s). Functions defined inside functions are exempt."""
    missing = []

    def visit(body, owner):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith('_'):
                visit(node.body, f'{owner}{node.name}.')
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith('_') and node.name not in ('__init__', '__call__'):
                    continue
                a = node.args
                params = [p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ('self', 'cls')]
                bare = [p.arg for p in params if p.annotation is None]
                if node.returns is None and node.name != '__init__':
                    bare.append('return')
                if bare:
                    missing.append(f'{where}:{node.lineno} {owner}{node.name} ({", ".join(bare)})')

    visit(ast.parse(source).body, '')
    return missing


def test_the_type_hint_finder_finds_what_is_missing():
    source = textwrap.dedent('''
        def ok(a: int, *args, b: str = '', **kwargs) -> None: ...
        def no_return(a: int): ...
        def bare(a, /, b: int, *, c) -> int: ...
        def _private(a): ...
        class Public:
            def __init__(self, a): ...
            def __call__(self, x: int): ...
            def __repr__(self): ...
            @classmethod
            def make(cls) -> 'Public': ...
            def outer(self) -> None:
                def inner(x): ...
            class Inner:
                def method(self): ...
        class _Private:
            def method(self, a): ...
    ''')
    assert _missing_hints(source, 'f.py') == [
        'f.py:3 no_return (return)', 'f.py:4 bare (a, c)', 'f.py:7 Public.__init__ (a)',
        'f.py:8 Public.__call__ (return)', 'f.py:15 Public.Inner.method (return)']


def test_every_public_function_of_sr_kd_and_scripts_has_type_hints():
    """Every public function and method of sr_kd/ and scripts/ says what it takes and returns."""
    missing = []
    for path in sorted([*(REPO / 'sr_kd').rglob('*.py'), *(REPO / 'scripts').glob('*.py')]):
        missing += _missing_hints(path.read_text(), path.relative_to(REPO).as_posix())
    assert not missing, f'{len(missing)} public functions without full type hints: ' + '; '.join(missing[:15])
