"""Installing the way Python users do: ``pip install -e .`` into an environment that already has torch keeps
that torch and pulls no GPU stack (basicsr's own metadata would: it is not a dependency), and ``import
sr_kd`` without basicsr names the command that installs it, in one line."""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from kd_util import REPO

GPU_STACK = ('nvidia-', 'triton')
UNWANTED = {'tb-nightly', 'torchvision', 'opencv-python'}  # opencv-python: clashes with the headless one


def _pip(python, *args, timeout=600):
    return subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), '--disable-pip-version-check',
                           *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_pip_install_dry_run_keeps_torch_and_pulls_no_gpu_stack(tmp_path):
    """A fresh virtual environment that sees only this machine's torch (2.13 CPU); pip's dry run of
    ``pip install -e .`` must keep it and install no nvidia-*, triton, tb-nightly, torchvision or
    opencv-python (GUI) package. Skipped where pip cannot reach a package index."""
    import torch
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    python = venv / 'bin' / 'python'
    site = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    # only torch (package + metadata) is visible in the new environment
    only_torch = tmp_path / 'only_torch'
    only_torch.mkdir()
    ours = Path(sysconfig.get_paths()['purelib'])
    dist = next(p for p in ours.glob('torch-*.dist-info'))
    for entry in (Path(torch.__file__).parent, dist):
        (only_torch / entry.name).symlink_to(entry)
    Path(site, 'only_torch.pth').write_text(str(only_torch) + '\n')
    version = subprocess.run([str(python), '-c', 'import importlib.metadata as m; print(m.version("torch"))'],
                             capture_output=True, text=True).stdout.strip()
    assert version == torch.__version__

    probe = _pip(python, 'install', '--dry-run', '--no-deps', '--ignore-installed', 'tqdm', timeout=120)
    if probe.returncode != 0:
        pytest.skip(f'no package index reachable: {probe.stderr.strip().splitlines()[-1:]}')
    report = tmp_path / 'report.json'
    proc = _pip(python, 'install', '--dry-run', '--report', str(report), '-e', str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {item['metadata']['name'].lower(): item['metadata']['version']
             for item in json.loads(report.read_text())['install']}
    assert 'torch' not in names, names  # the installed torch is kept
    assert not [n for n in names if n.startswith(GPU_STACK) or n in UNWANTED], names
    assert 'basicsr' not in names and 'sr_kd' in names.keys() | {n.replace('-', '_') for n in names}


def test_import_without_basicsr_names_the_command(tmp_path):
    """basicsr hidden from the interpreter: ``sr_kd.load()`` fails with one line naming the install
    command, and ``sr-kd`` prints that line and exits 2."""
    hide = tmp_path / 'hide'
    hide.mkdir()
    (hide / 'sitecustomize.py').write_text(
        'import sys\n'
        'class _Hide:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "basicsr" or name.startswith("basicsr."):\n'
        '            raise ModuleNotFoundError(name)\n'
        'sys.meta_path.insert(0, _Hide())\n')
    env = dict(os.environ, PYTHONPATH=f'{hide}{os.pathsep}{REPO}')
    proc = subprocess.run([sys.executable, '-c', 'import sr_kd; sr_kd.load()'], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert 'pip install --no-deps --no-build-isolation basicsr==1.4.2' in last and 'scripts/install.sh' in last
    console_script = 'import sys; sys.argv[0] = "/venv/bin/sr-kd"; from sr_kd.cli import main; sys.exit(main())'
    proc = subprocess.run([sys.executable, '-c', console_script, 'eval', '--model', 'x.pth', '--hr', '.', '--scale',
                           '2'], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f'sr-kd: error: {last.split(": ", 1)[1]}'], proc.stderr
