#!/usr/bin/env bash
# Create (or reuse) a virtual environment with one of the supported stacks,
# mmcv 2.1.0 with compiled ops built against its torch (with CUDA kernels when
# torch sees a GPU), mmpretrain 1.2.0, mmdet 3.3.0, mmsegmentation 1.2.2, and
# this package in editable mode.
#
# Usage: bash tools/setup_env.sh        (prints the venv's python at the end)
# Env:   MIXMAE_STACK  torch2.14 (default: torch 2.14.1) or torch2.1
#                      (torch 2.1.2); requirements/stacks/<stack>.txt
#        MIXMAE_VENV   venv folder (default: <repo>/.venv for torch2.14,
#                      <repo>/.venv-<stack> otherwise)
#        MIXMAE_CACHE  built-wheel cache    (default: ~/.cache/mixmae_mm)
#        PYTHON        interpreter for venv (default: python3.11 or python3)
#        MIXMAE_MMCV_CUDA  auto (default: CUDA ops when torch sees a GPU),
#                      1 (CUDA ops even without a GPU; needs
#                      TORCH_CUDA_ARCH_LIST), 0 (CPU ops only)
#        TORCH_CUDA_ARCH_LIST  GPU archs to compile for (default: those of
#                      the visible devices, e.g. "9.0")
#        MIXMAE_SETUP_DRY_RUN=1  print the plan (stack, venv, mmcv branch,
#                      cache key) and exit without installing anything
#        MIXMAE_PROBE  "torch=2.14.1 cuda=13.0 caps=9.0,8.0" replaces the
#                      probe of the venv's torch (dry runs and tests)
#
# A second run with unchanged requirement files returns in about a second.
# The mmcv wheel is cached under a key of torch version, Python tag, machine
# and, for CUDA builds, CUDA version and arch list (pip's own cache does not
# know which torch a wheel was compiled against).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${MIXMAE_STACK:-torch2.14}"
STACK_FILE="$REPO/requirements/stacks/$STACK.txt"
if [[ "$STACK" == torch2.14 ]]; then
    VENV="${MIXMAE_VENV:-$REPO/.venv}"
else
    VENV="${MIXMAE_VENV:-$REPO/.venv-$STACK}"
fi
CACHE="${MIXMAE_CACHE:-$HOME/.cache/mixmae_mm}"
MMCV_VERSION="2.1.0"
MMCV_CUDA="${MIXMAE_MMCV_CUDA:-auto}"
DRY_RUN="${MIXMAE_SETUP_DRY_RUN:-0}"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# stdout carries only the venv's python path (or the dry-run plan); everything
# else, pip's progress included, goes to stderr.
exec 3>&1 1>&2

[[ -f "$STACK_FILE" ]] || die "unknown MIXMAE_STACK '$STACK': expected one of \
$(cd "$REPO/requirements/stacks" && ls [!_]*.txt | grep -v constraints \
| sed 's/\.txt$//' | tr '\n' ' ')"
[[ "$MMCV_CUDA" =~ ^(auto|0|1)$ ]] \
    || die "MIXMAE_MMCV_CUDA must be auto, 0 or 1, got '$MMCV_CUDA'"

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(command -v python3.11 || command -v python3)"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off)
CONSTRAINTS=(-c "$REPO/requirements/constraints.txt"
             -c "$REPO/requirements/stacks/$STACK-constraints.txt")

# --- what torch offers: version, CUDA version, GPU capabilities -------------
probe_torch() {
    if [[ -n "${MIXMAE_PROBE:-}" ]]; then
        echo "$MIXMAE_PROBE"
        return
    fi
    "$PY" - <<'EOF'
import torch
caps = []
if torch.cuda.is_available():
    caps = sorted({'%d.%d' % torch.cuda.get_device_capability(i)
                   for i in range(torch.cuda.device_count())})
print(f'torch={torch.__version__.split("+")[0]} '
      f'cuda={torch.version.cuda or "none"} caps={",".join(caps) or "none"}')
EOF
}

# --- the mmcv branch: sets MMCV_BRANCH (cpu | cuda-build | cuda-prebuilt),
# ARCH_LIST, CUDA_VER, WHEEL_KEY, NVCC_SPEC, CXX_PATCH -----------------------
plan_mmcv() {
    local probe="$1" torch_ver cuda caps
    torch_ver="$(sed -n 's/.*torch=\([^ ]*\).*/\1/p' <<<"$probe")"
    cuda="$(sed -n 's/.*cuda=\([^ ]*\).*/\1/p' <<<"$probe")"
    caps="$(sed -n 's/.*caps=\([^ ]*\).*/\1/p' <<<"$probe")"
    [[ -n "$torch_ver" ]] || die "could not read torch's version from '$probe'"
    local pytag
    pytag="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    WHEEL_KEY="torch-${torch_ver}-${pytag}-$(uname -m)"
    # torch >= 2.5 headers need C++20; mmcv 2.1.0 hard-codes c++14/c++17
    # (open-mmlab/mmcv#3341)
    CXX_PATCH=0
    if [[ "$(printf '%s\n' 2.5 "${torch_ver%.*}" | sort -V | head -n1)" == 2.5 ]]; then
        CXX_PATCH=1
    fi
    MMCV_BRANCH=cpu
    ARCH_LIST=""
    CUDA_VER="$cuda"
    NVCC_SPEC=""
    local want_cuda=0
    if [[ "$MMCV_CUDA" == 1 ]]; then
        want_cuda=1
    elif [[ "$MMCV_CUDA" == auto && "$caps" != none && -n "$caps" ]]; then
        want_cuda=1
    elif [[ "$MMCV_CUDA" == 0 && "$caps" != none && -n "$caps" ]]; then
        log "WARNING: a GPU is visible but MIXMAE_MMCV_CUDA=0: mmcv gets CPU" \
            "ops only, so Mask R-CNN / UperNet runs on the GPU will fail in" \
            "RoIAlign / NMS"
    fi
    [[ "$want_cuda" == 1 ]] || return 0
    [[ "$cuda" != none && -n "$cuda" ]] || die "CUDA ops for mmcv were \
asked for, but torch $torch_ver is a CPU-only build (torch.version.cuda is \
None). Install a CUDA build of torch, or set MIXMAE_MMCV_CUDA=0."
    ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-}"
    if [[ -z "$ARCH_LIST" ]]; then
        [[ "$caps" != none && -n "$caps" ]] || die "MIXMAE_MMCV_CUDA=1 \
without a visible GPU needs TORCH_CUDA_ARCH_LIST (e.g. 9.0 for H100/H200, 8.0 \
for A100)."
        ARCH_LIST="${caps//,/;}"
    fi
    local arch_key="${ARCH_LIST//;/-}"
    arch_key="${arch_key// /-}"
    WHEEL_KEY="${WHEEL_KEY}-cu${cuda//./}-sm${arch_key//./}"
    local cuda_major="${cuda%%.*}"
    if [[ "$torch_ver" == 2.1.* ]]; then
        # OpenMMLab publishes CUDA wheels of mmcv 2.1.0 for torch 2.1
        MMCV_BRANCH=cuda-prebuilt
        MMCV_INDEX="https://download.openmmlab.com/mmcv/dist/cu${cuda//./}/torch2.1/index.html"
        return 0
    fi
    MMCV_BRANCH=cuda-build
    if [[ "$cuda_major" -ge 13 ]]; then
        # nvcc and headers from the package index, matching torch's CUDA
        # exactly (a newer nvvm's ptxas refuses torch's PTX version)
        NVCC_SPEC="nvidia-cuda-nvcc==${cuda}.* nvidia-cuda-runtime==${cuda}.* \
nvidia-cuda-cccl==${cuda}.* nvidia-nvvm==${cuda}.* nvidia-cuda-crt==${cuda}.*"
    elif ! command -v nvcc >/dev/null || \
            ! nvcc --version | grep -q "release ${cuda}"; then
        die "building mmcv's CUDA ops for torch $torch_ver (CUDA $cuda) \
needs nvcc $cuda on PATH (CUDA_HOME set); found: \
$(command -v nvcc >/dev/null && nvcc --version | tail -n1 || echo none). \
Alternatives: install CUDA toolkit $cuda; or use the torch 2.1 stack \
(MIXMAE_STACK=torch2.1), for which OpenMMLab ships prebuilt CUDA wheels of \
mmcv 2.1.0; or MIXMAE_MMCV_CUDA=0 for CPU ops (pretraining only on the GPU)."
    fi
}

print_plan() {
    {
        echo "stack=$STACK"
        echo "stack_file=requirements/stacks/$STACK.txt"
        echo "venv=$VENV"
        echo "mmcv_branch=$MMCV_BRANCH"
        echo "cuda=$CUDA_VER"
        echo "arch_list=$ARCH_LIST"
        echo "cxx20_patch=$CXX_PATCH"
        echo "nvcc=${NVCC_SPEC:-system}"
        echo "wheel_dir=$CACHE/wheels/$WHEEL_KEY"
        [[ "$MMCV_BRANCH" != cuda-prebuilt ]] || echo "mmcv_index=$MMCV_INDEX"
    } >&3
}

if [[ "$DRY_RUN" == 1 ]]; then
    if [[ -z "${MIXMAE_PROBE:-}" && ! -x "$PY" ]]; then
        die "dry run without MIXMAE_PROBE needs an existing venv at $VENV"
    fi
    plan_mmcv "$(probe_torch)"
    print_plan
    exit 0
fi

# Everything that decides the environment's content goes into the stamp
# (the mmcv branch is checked separately below, it depends on the machine).
STAMP_SRC="$(cat "$REPO"/requirements/*.txt "$STACK_FILE" \
    "$REPO/requirements/stacks/$STACK-constraints.txt" "$REPO/setup.cfg" \
    "$REPO/pyproject.toml" "$REPO/tools/setup_env.sh" \
    <(echo "$MMCV_CUDA ${TORCH_CUDA_ARCH_LIST:-}") | sha256sum | cut -c1-16)"
STAMP_FILE="$VENV/.mixmae_mm_stamp"
if [[ -x "$PY" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP_SRC" ]]; then
    log "environment up to date: $VENV"
    echo "$PY" >&3
    exit 0
fi

if [[ ! -x "$PY" ]]; then
    log "creating virtual environment $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi

log "1/5 build tools (setuptools<81 keeps pkg_resources for mmcv and mmengine)"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/build.txt"

log "2/5 stack $STACK: $(grep -v '^#' "$STACK_FILE" | tr '\n' ' ')"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$STACK_FILE"

log "3/5 mmcv ${MMCV_VERSION} with compiled ops"
plan_mmcv "$(probe_torch)"
log "mmcv branch: $MMCV_BRANCH${ARCH_LIST:+ (archs $ARCH_LIST, CUDA $CUDA_VER)}"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/mmcv.txt"
WHEEL_DIR="$CACHE/wheels/$WHEEL_KEY"
mkdir -p "$WHEEL_DIR"

# Whether the installed mmcv's extension holds CUDA kernels (no GPU needed),
# by the detector of tools/check_env.py (standard library only, so it loads
# before this package is installed).
mmcv_has_cuda_kernels() {
    "$PY" - "$REPO/mixmae_mm/utils/check_env.py" <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location('check_env', sys.argv[1])
check_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_env)
ext = importlib.util.find_spec('mmcv._ext')
sys.exit(0 if ext and ext.origin and check_env.detect_cuda_kernels(
    ext.origin)['has_cuda_kernels'] else 1)
EOF
}
mmcv_ok() {
    "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '${MMCV_VERSION}')" \
        2>/dev/null || return 1
    # a CUDA build also runs its CPU ops: only the CUDA branches check more
    [[ "$MMCV_BRANCH" == cpu ]] || mmcv_has_cuda_kernels
}

build_mmcv() {
    local build
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    "$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
        --no-build-isolation "mmcv==${MMCV_VERSION}" -d "$build"
    tar -xzf "$build"/mmcv-${MMCV_VERSION}.tar.gz -C "$build"
    local src="$build/mmcv-${MMCV_VERSION}"
    if [[ "$CXX_PATCH" == 1 ]]; then
        sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
            "$src/setup.py"
        grep -q 'std=c++20' "$src/setup.py" \
            || die "C++20 patch did not apply to mmcv's setup.py"
    fi
    local force_cuda=0 env=()
    if [[ "$MMCV_BRANCH" == cuda-build ]]; then
        force_cuda=1
        env+=(TORCH_CUDA_ARCH_LIST="$ARCH_LIST")
        if [[ -n "$NVCC_SPEC" ]]; then
            log "nvcc from the package index: $NVCC_SPEC"
            # shellcheck disable=SC2086
            "${PIP[@]}" $NVCC_SPEC
            local site nv
            site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
            nv="$site/nvidia/cu${CUDA_VER%%.*}"
            [[ -x "$nv/bin/nvcc" ]] || die "nvcc not found in $nv/bin after installing $NVCC_SPEC"
            # the linker wants an unversioned libcudart.so
            mkdir -p "$build/lib"
            ln -sf "$(ls "$nv"/lib/libcudart.so.* | head -n1)" "$build/lib/libcudart.so"
            env+=(CUDA_HOME="$nv" PATH="$nv/bin:$PATH"
                  LIBRARY_PATH="$build/lib:$nv/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
                  CPATH="$nv/include${CPATH:+:$CPATH}")
        fi
    fi
    log "building mmcv from source (FORCE_CUDA=$force_cuda; about 9 minutes on 2 cores \
for CPU ops, 40 or more with CUDA kernels)"
    env "${env[@]}" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        FORCE_CUDA="$force_cuda" \
        "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
        "$src" -w "$build/dist"
    cp "$build"/dist/mmcv-${MMCV_VERSION}-*.whl "$WHEEL_DIR/"
    rm -rf "$build"
    trap - EXIT
}

if mmcv_ok; then
    log "mmcv ${MMCV_VERSION} with ops already installed"
else
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -n "$WHEEL" ]]; then
        log "reusing cached wheel $WHEEL"
        "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
    elif [[ "$MMCV_BRANCH" == cuda-prebuilt ]]; then
        log "OpenMMLab's prebuilt CUDA wheel from $MMCV_INDEX"
        "${PIP[@]}" --no-deps --force-reinstall "mmcv==${MMCV_VERSION}" -f "$MMCV_INDEX" \
            || die "could not install mmcv ${MMCV_VERSION} from $MMCV_INDEX \
(network?). Alternatives: download that wheel elsewhere and put it into \
$WHEEL_DIR; or MIXMAE_MMCV_CUDA=0 for CPU ops (pretraining only on the GPU)."
    else
        log "no cached mmcv wheel in $WHEEL_DIR: building from source"
        build_mmcv
        WHEEL="$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl | head -n1)"
        log "cached $WHEEL"
        "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
    fi
    mmcv_ok || die "mmcv ${MMCV_VERSION} was installed but its ops do not \
import, or it lacks the expected CUDA kernels (branch $MMCV_BRANCH): remove \
$WHEEL_DIR and run again"
fi
if [[ "$MMCV_BRANCH" != cpu ]]; then
    log "verified: mmcv's extension contains CUDA kernels"
fi

log "4/5 mmengine, mmpretrain, mmdet, mmsegmentation, test and docs tools"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r "$REPO/requirements/runtime.txt" -r "$REPO/requirements/tests.txt" \
    -r "$REPO/requirements/docs.txt" -r "$STACK_FILE"

log "5/5 mixmae_mm (editable)"
"${PIP[@]}" --no-deps --no-build-isolation -e "$REPO"
# mim finds a package's folder through pkg_resources, which places this
# (PEP 660) editable install in site-packages; metadata in the checkout
# points it at the checkout when that is on sys.path (`python -m mim` run
# from it; docs/en/tools.md, "TensorBoard, mim and curves").
(cd "$REPO" && "$PY" -c 'from setuptools import setup; setup()' -q egg_info)

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
