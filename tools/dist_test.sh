#!/usr/bin/env bash
# Distributed evaluation with torchrun (one process per GPU), OpenMMLab form.
#
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options...]
#
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR
# (127.0.0.1); PYTHON (python) picks the interpreter; DRY_RUN=1 prints the
# command instead of running it.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

cmd=(env "PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" -m torch.distributed.run
    --nnodes="$NNODES"
    --node_rank="$NODE_RANK"
    --master_addr="$MASTER_ADDR"
    --nproc_per_node="$GPUS"
    --master_port="$PORT"
    "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch
    "${@:4}")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '%q' "${cmd[0]}"
    printf ' %q' "${cmd[@]:1}"
    printf '\n'
    exit 0
fi
exec "${cmd[@]}"
