#!/usr/bin/env bash
# Issue 29 on a lent GPU: the student alone and the default at the paper's crop (HR 192, batch 16), seeds
# 0-2, the six runs at once on the one GPU, inside one 10-minute device call. Here first:
#   bash scripts/device_pack.sh
# then the device call (carry .device):  bash scripts/kd_study_gpu.sh
# and back here:  .venv/bin/python -m scripts.kd_study --import-device <the call's files folder>
# It leaves in $OUT: log, train_tails.txt (the end of each run's output: a crash's traceback), rows.jsonl
# (the runs that finished) and runs.tar (their final weights and logs, and the validation curves of runs
# the deadline stopped, which --import-device prints). ITERS (default 10,000: the CPU study's 20,000 crops
# of 8, in crops of 16) and DEADLINE (seconds, default 540) can be set. The default is `imdn_kd`
# (options/imdn_kd.yml's terms, fade at 10%-30% of the run: 1,000-3,000 of 10,000, as the file does).
# A batch of 16 MATLAB-bicubic crops of 192 px costs about 22 ms of one core (2026-12-07, measured on the
# CPU machine at 96 px and scaled), so each run gets a data-loader process: 12 processes on 16 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-10000} DEADLINE=${DEADLINE:-540} OUT=${OUT:-/tmp/kd_gpu_out}
RUNS=${RUNS:-student:0,imdn_kd:0,student:1,imdn_kd:1,student:2,imdn_kd:2}
ROOT=/tmp/kd_gpu
mkdir -p "$OUT" "$ROOT/experiments" "$ROOT/logs"
if ! python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("basicsr"))'; then  # the device's image
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl \
        || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SR_KD_CACHE=/tmp/sr_kd_cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/log"
# what a run imports, checked once before six of them start
python3 -c 'import sr_kd; sr_kd.load(); import basicsr.train, sr_kd.schema, sr_kd.models, sr_kd.losses' 2>&1 \
    | tee -a "$OUT/log" || exit 1
before=$(wc -l < docs/kd_study/results.jsonl)
timeout "$DEADLINE" python3 -m scripts.kd_study --runs "$RUNS" --iters "$ITERS" --crop 192,16 \
    --data "$PWD/.device/shared/train" --teacher "$PWD/.device/shared/pretrained/IMDN_x4.pth" \
    --jobs 6 --threads 1 --workers 1 --root "$ROOT" 2>&1 | tee -a "$OUT/log"
pkill -f 'sr_kd/train.py -opt .*_hr192b16\.yml'  # this script's runs the deadline stopped (theirs alone)
sleep 3
tail -n +"$((before + 1))" docs/kd_study/results.jsonl > "$OUT/rows.jsonl"
tail -n 40 "$ROOT"/logs/*.out > "$OUT/train_tails.txt" 2>&1
tar -cf "$OUT/runs.tar" -C "$ROOT/experiments" --exclude=training_states --exclude='net_g_[0-9]*.pth' \
    --exclude=teacher_cache --exclude=visualization .
