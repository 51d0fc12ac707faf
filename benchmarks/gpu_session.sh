#!/bin/sh
# The training-speed measurements for a session that is lent a GPU, in one go (issue 17, item 3).
#
#   sh benchmarks/gpu_session.sh [CWRU_DIR] [JOBS]      # defaults: shared/data/cwru (or ../shared/data/cwru), 9
#
# Runs, each under its own time limit so that the whole fits a 15-minute device budget:
#   1. one CWRU WDCNN-protocol training (drsn-cw, 30 epochs, seed 0)         target < 1 min
#   2. the 9-training WDCNN grid (drsn-cw, drsn-cs, resnet x 3 seeds), JOBS at a time  target < 5 min
#   3. the DRSN-paper grid, seed 0 (72 cells), JOBS at a time, stopped after 5 min     target < 30 min
# Each step writes benchmark.json (wall time, device, machine with the GPU's name, code revision)
# under $OUT (or benchmarks/results/gpu_*/ when OUT is unset) beside its sweep's summary; a step
# stopped by its limit leaves the cells it finished (cwru_accuracy --report-only aggregates them).
# Nothing here is timed on CPU: run `python -m benchmarks.cwru_accuracy wdcnn --jobs 2` for that.
set -u
cd "$(dirname "$0")/.."
DATA=${1:-}
if [ -z "$DATA" ]; then
    for d in shared/data/cwru ../shared/data/cwru; do [ -d "$d" ] && DATA=$d && break; done
fi
[ -n "$DATA" ] && [ -d "$DATA" ] || { echo "gpu_session: no CWRU folder (give it as the first argument)" >&2; exit 2; }
JOBS=${2:-9}
RES=${OUT:-benchmarks/results}
PY=${PYTHON:-python}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu_session: no CUDA device visible to PyTorch; nothing measured" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv 2>/dev/null

step() {  # step NAME LIMIT_S ARGS...: one cwru_accuracy run under a time limit, then its report
    name=$1; limit=$2; shift 2
    echo "== $name (limit ${limit} s) $(date)"
    timeout "$limit" $PY -m benchmarks.cwru_accuracy "$@" --device cuda --data-dir "$DATA" \
        --out "runs/gpu_$name" --results "$RES/gpu_$name"
    rc=$?
    if [ $rc -eq 124 ]; then
        echo "$name: stopped at its limit; aggregating the finished cells"
        $PY -m benchmarks.cwru_accuracy "$@" --report-only --data-dir "$DATA" --out "runs/gpu_$name" \
            --results "$RES/gpu_$name" || true
    fi
}

step one 120 wdcnn --jobs 1 --set 'sweep.models=["drsn-cw"]' --set 'sweep.seeds=[0]'
step grid9 360 wdcnn --jobs "$JOBS" --set 'sweep.models=["drsn-cw","drsn-cs","resnet"]'
step paper 300 paper --jobs "$JOBS" --set 'sweep.seeds=[0]'
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv 2>/dev/null
echo "done $(date)"
