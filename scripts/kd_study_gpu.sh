#!/usr/bin/env bash
# Issue 29 on a lent GPU: the student alone and the default at the paper's crop (HR 192, batch 16), seeds
# 0-2, the six runs at once on the one GPU, inside one 10-minute device call. Here first:
#   bash scripts/device_pack.sh
# then the device call (carry .device):  bash scripts/kd_study_gpu.sh
# and back here:  .venv/bin/python -m scripts.kd_study --import-device <the call's files folder>
# It leaves in $OUT: log, rows.jsonl (the runs that finished) and runs.tar (their final weights and logs, and
# the validation curves of runs the deadline stopped). ITERS (default 10,000: the CPU study's 20,000 crops
# of 8, in crops of 16) and DEADLINE (seconds, default 480) can be set. A batch of 16 MATLAB-bicubic crops
# of 192 px costs about 22 ms of one core (2026-12-07, measured on the CPU machine at 96 px and scaled), so
# each run gets a data-loader process beside its own: 12 processes on the 16 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-10000} DEADLINE=${DEADLINE:-480} OUT=${OUT:-/tmp/kd_gpu_out}
RUNS=${RUNS:-student:0,fade_keep_output:0,student:1,fade_keep_output:1,student:2,fade_keep_output:2}
mkdir -p "$OUT"
if ! python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("basicsr"))'; then  # the device's image
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl \
        || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SR_KD_CACHE=/tmp/sr_kd_cache
[ -e ../shared ] || ln -s "$PWD/.device/shared" ../shared
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
before=$(wc -l < docs/kd_study/results.jsonl)
timeout "$DEADLINE" python3 -m scripts.kd_study --runs "$RUNS" --iters "$ITERS" --crop 192,16 \
    --jobs 6 --threads 1 --workers 1 --root /tmp/kd_gpu 2>&1 | tee "$OUT/log"
pkill -f 'sr_kd/train.py -opt .*_hr192b16\.yml'  # this script's runs the deadline stopped (theirs alone)
tail -n +"$((before + 1))" docs/kd_study/results.jsonl > "$OUT/rows.jsonl"
tar -cf "$OUT/runs.tar" -C /tmp/kd_gpu/experiments --exclude=training_states --exclude='net_g_[0-9]*.pth' \
    --exclude=teacher_cache --exclude=visualization .
for f in /tmp/kd_gpu/experiments/kd_study_*/train_*.log; do echo "$f: $(grep -o 'iter: *[0-9,]*' "$f" | tail -1)"; done
