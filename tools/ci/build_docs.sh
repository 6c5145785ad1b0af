#!/usr/bin/env bash
# Build the documentation site (docs/en, Sphinx + myst-parser) into
# docs/_build/html with warnings as errors, so that a broken link between
# pages, a missing image, a page outside the table of contents or a docstring
# that does not parse fails CI. Extra arguments go to sphinx-build (e.g. -n
# for nitpicky references).
#
# Usage: bash tools/ci/build_docs.sh   (MIXMAE_STACK picks the environment
#        as in tools/setup_env.sh, which installs requirements/docs.txt)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$(bash "$REPO/tools/setup_env.sh")"
OUT="${MIXMAE_DOCS_OUT:-$REPO/docs/_build/html}"
start=$SECONDS
# -E: read every page again (a stale environment would hide warnings)
"$PY" -m sphinx -b html -W --keep-going -E -q "$@" "$REPO/docs/en" "$OUT"
echo "[docs] built $OUT in $((SECONDS - start)) s"
