#!/usr/bin/env bash
# Distributed training with torchrun (one process per GPU), OpenMMLab form.
#
#   tools/dist_train.sh CONFIG GPUS [train.py options...]
#
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR
# (127.0.0.1) for multi-node runs; PYTHON (python) picks the interpreter;
# DRY_RUN=1 prints the command instead of running it.
# Example, 8 GPUs:
#   tools/dist_train.sh \
#       configs/mixmae/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py 8
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG GPUS [train.py options...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
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
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '%q' "${cmd[0]}"
    printf ' %q' "${cmd[@]:1}"
    printf '\n'
    exit 0
fi
exec "${cmd[@]}"
