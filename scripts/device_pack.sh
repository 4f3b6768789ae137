#!/usr/bin/env bash
# Packs what scripts/kd_study_gpu.sh needs on a lent GPU machine, which reaches nothing and gets only the
# working tree (64 MiB in all, carried paths included): ../shared's training images and teacher, and wheels
# of the packages its Python 3.12 image lacks (and typing_extensions: pydantic needs a newer one than
# torch asks for). The images go as lossless WebP (the same pixels in 2/3 of the
# PNGs' bytes, checked on every file); Set5/Set14 stay here: `kd_study --import-device` evaluates them.
# Writes .device/ (ignored by git); the device call names it in `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
mkdir -p .device/shared/train .device/shared/pretrained .device/whl
cp "$SHARED/pretrained/IMDN_x4.pth" .device/shared/pretrained/
.venv/bin/python - "$SHARED/train" .device/shared/train <<'PY'
import os, sys
import cv2
src, dst = sys.argv[1:]
for name in sorted(os.listdir(src)):
    out = os.path.join(dst, os.path.splitext(name)[0] + '.webp')
    if os.path.isfile(out):
        continue
    img = cv2.imread(os.path.join(src, name), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(out, img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # quality above 100: lossless
    if not (cv2.imread(out, cv2.IMREAD_UNCHANGED) == img).all():
        sys.exit(f'{name}: WebP is not lossless here')
PY
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .device/whl lmdb==3.0.0 spandrel==0.4.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 \
    typing_inspection==0.4.5 typing_extensions==4.16.0
pip wheel --no-deps --no-build-isolation -w .device/whl basicsr==1.4.2
du -sh .device
