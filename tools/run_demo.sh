#!/usr/bin/env bash
# README command 1: set up the environment (reused when up to date), write the
# demo data if absent, pretrain the tiny MixMAE on it and print the checkpoint.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$REPO/tools/setup_env.sh")"
cd "$REPO"
CONFIG=configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py
WORK_DIR="${WORK_DIR:-work_dirs/demo/pretrain}"
"$PY" tools/misc/make_demo_data.py --out data/demo
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
echo "pretraining checkpoint: $CKPT"
