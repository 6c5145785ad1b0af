#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with the verified stack:
# torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 with compiled
# ops (built from source with a C++20 patch), mmpretrain 1.2.0, mmdet 3.3.0,
# mmsegmentation 1.2.2, and this package in editable mode.
#
# Usage: bash tools/setup_env.sh        (prints the venv's python at the end)
# Env:   MIXMAE_VENV   venv folder          (default: <repo>/.venv)
#        MIXMAE_CACHE  built-wheel cache    (default: ~/.cache/mixmae_mm)
#        PYTHON        interpreter for venv (default: python3.11 or python3)
#
# A second run with unchanged requirement files returns in about a second.
# The mmcv wheel is cached per torch version and Python tag, so a fresh venv on
# the same machine skips the ~9-minute build.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MIXMAE_VENV:-$REPO/.venv}"
CACHE="${MIXMAE_CACHE:-$HOME/.cache/mixmae_mm}"
TORCH_VERSION="2.14.1"
MMCV_VERSION="2.1.0"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# stdout carries only the venv's python path (callers capture it); everything
# else, pip's progress included, goes to stderr.
exec 3>&1 1>&2

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(command -v python3.11 || command -v python3)"
fi

# Everything that decides the environment's content goes into the stamp.
STAMP_SRC="$(cat "$REPO"/requirements/*.txt "$REPO/setup.cfg" "$REPO/pyproject.toml" \
    "$REPO/tools/setup_env.sh" | sha256sum | cut -c1-16)"
STAMP_FILE="$VENV/.mixmae_mm_stamp"
if [[ -x "$VENV/bin/python" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP_SRC" ]]; then
    log "environment up to date: $VENV"
    echo "$VENV/bin/python" >&3
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off)
CONSTRAINTS=(-c "$REPO/requirements/constraints.txt")

log "1/5 build tools (setuptools<81 keeps pkg_resources for mmcv and mmengine)"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/build.txt"

log "2/5 torch ${TORCH_VERSION} + torchvision (about 1 minute on a fresh venv)"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/torch.txt"

log "3/5 mmcv ${MMCV_VERSION} with compiled ops"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/mmcv.txt"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEEL_DIR="$CACHE/wheels/torch-${TORCH_VERSION}-${PYTAG}-$(uname -m)"
mkdir -p "$WHEEL_DIR"
if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '${MMCV_VERSION}')" 2>/dev/null; then
    log "mmcv ${MMCV_VERSION} with ops already installed"
else
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$WHEEL" ]]; then
        log "no cached mmcv wheel in $WHEEL_DIR: building from source (about 9 minutes on 2 cores)"
        BUILD="$(mktemp -d)"
        trap 'rm -rf "$BUILD"' EXIT
        "$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
            --no-build-isolation "mmcv==${MMCV_VERSION}" -d "$BUILD"
        tar -xzf "$BUILD"/mmcv-${MMCV_VERSION}.tar.gz -C "$BUILD"
        # torch >= 2.5 headers need C++20; mmcv 2.1.0 hard-codes c++14/c++17
        # (open-mmlab/mmcv#3341).
        sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
            "$BUILD/mmcv-${MMCV_VERSION}/setup.py"
        grep -q 'std=c++20' "$BUILD/mmcv-${MMCV_VERSION}/setup.py" \
            || { log "C++20 patch did not apply to mmcv's setup.py"; exit 1; }
        MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA=0 \
            "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
            "$BUILD/mmcv-${MMCV_VERSION}" -w "$BUILD/dist"
        cp "$BUILD"/dist/mmcv-${MMCV_VERSION}-*.whl "$WHEEL_DIR/"
        WHEEL="$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl | head -n1)"
        log "cached $WHEEL"
    else
        log "reusing cached wheel $WHEEL"
    fi
    "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
fi

log "4/5 mmengine, mmpretrain, mmdet, mmsegmentation, test tools"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/runtime.txt" -r "$REPO/requirements/tests.txt"

log "5/5 mixmae_mm (editable)"
"${PIP[@]}" --no-deps --no-build-isolation -e "$REPO"

"$PY" - <<'EOF'
import mmcv, mmcv.ops, mmdet, mmengine, mmpretrain, mmseg, torch, torchvision
import mixmae_mm  # noqa: F401
print(f'torch {torch.__version__}, torchvision {torchvision.__version__}, '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops), '
      f'mmpretrain {mmpretrain.__version__}, mmdet {mmdet.__version__}, '
      f'mmseg {mmseg.__version__}')
EOF
echo "$STAMP_SRC" > "$STAMP_FILE"
log "environment ready: $VENV"
echo "$PY" >&3
