#!/usr/bin/env bash
# README command 1: set up the environment (reused when up to date), then the
# whole demo: generated data -> MixMAE pretraining -> reconstruction grid ->
# classification (also from a random-init encoder, same budget) / detection /
# segmentation fine-tuning and evaluation -> summary table. Steps whose
# outputs exist are reused; `--force` redoes them; `--readme docs/en/demo.md`
# writes the summary into that documentation page.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$REPO/tools/setup_env.sh")"
cd "$REPO"
exec "$PY" tools/misc/run_demo.py "$@"
