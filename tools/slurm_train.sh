#!/usr/bin/env bash
# Training on a Slurm cluster (one task per GPU), OpenMMLab form.
#
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py opts]
#
# Environment:
#   GPUS (8, in total), GPUS_PER_NODE (min(GPUS, 8)), CPUS_PER_TASK (5),
#   SRUN_ARGS (extra srun options, e.g. "--quotatype=auto"),
#   PYTHON (python), DRY_RUN=1 (print the srun command, do not submit).
# Example, 16 GPUs on 2 nodes:
#   GPUS=16 tools/slurm_train.sh dev mixmae \
#       configs/mixmae/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py \
#       work_dirs/mixmae_b600
set -euo pipefail

if [[ $# -lt 4 ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py opts]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# shellcheck disable=SC2206  # SRUN_ARGS is a list of options
cmd=(env "PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    srun -p "$PARTITION"
    --job-name="$JOB_NAME"
    --gres=gpu:"$GPUS_PER_NODE"
    --ntasks="$GPUS"
    --ntasks-per-node="$GPUS_PER_NODE"
    --cpus-per-task="$CPUS_PER_TASK"
    --kill-on-bad-exit=1
    ${SRUN_ARGS}
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR"
    --launcher=slurm "${@:5}")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '%q' "${cmd[0]}"
    printf ' %q' "${cmd[@]:1}"
    printf '\n'
    exit 0
fi
exec "${cmd[@]}"
