#!/usr/bin/env bash
# README command 2: set up the environment (reused when up to date) and run
# the test suite. Extra arguments go to pytest.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$REPO/tools/setup_env.sh")"
cd "$REPO"
exec "$PY" -m pytest tests "$@"
