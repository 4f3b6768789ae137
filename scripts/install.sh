#!/usr/bin/env bash
# Creates .venv and installs sr_kd with basicsr 1.4.2 the way that works on today's machines
# (docs/design.md "Installing"; measured facts in ../shared/DESIGN.md "Install recipe"): torch pinned in
# every step, basicsr without build isolation and without its broken dependency list, then the packages
# basicsr really imports.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${SR_KD_TORCH:-torch==2.13.0}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's resolver warns that basicsr "requires" torchvision/tb-nightly: that is the point of --no-deps.
pip() {
  .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v -E \
    "WARNING: Location|dependency resolver does not|^basicsr 1.4.2 requires|^spandrel 0.4.2 requires" >&2)
}
echo "$TORCH" > .venv/constraints.txt
pip install "$TORCH"
pip install -c .venv/constraints.txt setuptools wheel numpy opencv-python-headless scipy tqdm pyyaml \
    tensorboard lmdb requests
pip install -c .venv/constraints.txt --no-build-isolation --no-deps basicsr==1.4.2
pip install -c .venv/constraints.txt kornia scikit-image pillow matplotlib pytest hypothesis onnx onnxruntime onnxscript
# spandrel (the ecosystem's model loader) asks for torchvision in its metadata: without its dependency
# list, plus what it imports; sr_kd's torchvision stand-in gives it the two names it imports at start-up.
pip install -c .venv/constraints.txt --no-deps spandrel==0.4.2
pip install -c .venv/constraints.txt safetensors einops typing_extensions pydantic
pip install -c .venv/constraints.txt --no-build-isolation --no-deps -e .
echo "sr_kd installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
