#!/usr/bin/env bash
# GPU smoke test: one command, about 5 minutes on one H100/H200 (10 at most), a verdict line per check and a
# table at the end: the default launcher (fork server), in-process serving, clocks, the harness/bare-loop ratio.
#
#   benchmarks/gpu_smoke.sh [RESULTS_DIR]        (default results/gpu_smoke)
#
# Needs: a CUDA build of torch installed first (the project's CPU pin does not see a GPU), then
# `pip install -e .` (nvidia-ml-py, torchao and the rest come with it), an NVIDIA driver that NVML can
# load, and about 2 GB of free GPU memory. No network: the model (model=125m) is built from its config.
# Exit code: 0 all checks passed, 1 some check failed, 2 no GPU visible (nothing was checked).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-results/gpu_smoke}
STEP_LIMIT_S=${GPU_SMOKE_STEP_LIMIT_S:-240}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    version=$("$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}")' 2>&1 | tail -1)
    echo "gpu_smoke: no CUDA GPU is visible to torch ($version): nothing was checked." >&2
    echo "gpu_smoke: run it on a GPU machine with a CUDA build of torch (see the header of $0)." >&2
    exit 2
fi

failed=0
step() {  # step NAME COMMAND...: run with a time limit, keep its verdict lines, note a failure
    local name=$1
    shift
    echo "== $name"
    timeout "$STEP_LIMIT_S" "$@"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        failed=1
        [ "$rc" -eq 124 ] && echo "FAIL $name: still running after ${STEP_LIMIT_S} s"
    fi
}

step identity "$PY" benchmarks/gpu_smoke.py identity
# the default launcher (the fork server, launcher.preload on) first: where every run fails the same way, say it
# in one line and stop (nothing later would tell more)
step precisions "$PY" -m harness -m "results_dir=$OUT" sweep=precisions model=125m \
    precision=fp32,fp16,bf16,int8 repeats=2 timeout_s=180
if ! "$PY" benchmarks/gpu_smoke.py stop-if-same "$OUT/precisions"; then
    echo "gpu_smoke: stopped early (results under $OUT)"
    exit 1
fi
step serving "$PY" -m harness -m "results_dir=$OUT" sweep=serving workload=serving serving.engine=transformers \
    model=125m precision=bf16 serving.num_requests=16 serving.rate=8 timeout_s=180
step bare-ratio "$PY" benchmarks/gpu_overhead.py --verdicts --model 1b --precision bf16 --batch-sizes 1,32 \
    --rounds 3 --seconds 2 --out "$OUT/gpu_overhead.json"
step energy "$PY" benchmarks/gpu_smoke.py energy 6
step procs "$PY" benchmarks/gpu_smoke.py procs
step int8-path "$PY" benchmarks/gpu_smoke.py int8
step training "$PY" -m harness -m "results_dir=$OUT" sweep=training workload=training model=125m \
    precision=bf16,fp16 workload.max_steps=30 workload.eval_interval=10 timeout_s=180
step runs "$PY" benchmarks/gpu_smoke.py verdict "$OUT"
echo "== table"
"$PY" benchmarks/gpu_smoke.py table "$OUT" "$OUT/gpu_overhead.json"

if [ "$failed" -ne 0 ]; then
    echo "gpu_smoke: some checks FAILED (results under $OUT)"
    exit 1
fi
echo "gpu_smoke: all checks passed (results under $OUT)"
