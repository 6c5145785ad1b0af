#!/usr/bin/env bash
# README command 2: set up the environment (reused when up to date) and run
# the test suite. Extra arguments go to pytest. MIXMAE_STACK=torch2.1 runs it
# on the torch 2.1.2 stack (its own venv, .venv-torch2.1), see setup_env.sh.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$REPO/tools/setup_env.sh")"
cd "$REPO"
exec "$PY" -m pytest tests "$@"
