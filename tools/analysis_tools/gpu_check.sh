#!/usr/bin/env bash
# One prepared check of this package on a CUDA machine, in about 12 minutes
# on one H200 (device time is scarce: everything runs in one call, each step
# is bounded, and a failing step is recorded while the others still run).
#
#   1. python tools/check_env.py --json   (versions, mmcv ops / CUDA kernels)
#   2. one AMP training run of 2 iterations at batch 2 on generated data
#      (tools/misc/make_demo_data.py) for each paper-protocol config:
#      MixMAE Swin-B/W14 pretraining, Mask R-CNN (mmdet), UperNet (mmseg);
#      no validation, no checkpoint download (model.backbone.init_cfg=None);
#      then the pretraining run again with mmengine's compile=True (the
#      Runner compiles train_step with inductor: the static-shape path)
#   3. tools/analysis_tools/benchmark.py on CUDA in bf16: the pretraining
#      step (images/s, achieved GFLOP/s vs the measured bf16 matmul rate,
#      i.e. the model-FLOP utilisation), eager and compiled (--compile:
#      both implementations, inductor), compiled with CUDA graphs
#      (--compile-mode reduce-overhead), and the dense backbone forward
#      (--dense)
#
# Everything goes to ${OUT:-work_dirs/gpu_check} (a few MB: no checkpoint
# is written): logs/NN_<step>.log, check_env.json,
# benchmark_{pretrain,compiled,cudagraphs,dense}.txt, summary.txt, data/
# and the work dirs.
# The exit code is 0 when every step passed, 1 otherwise (2: no CUDA).
#
# Usage (from anywhere; runs in the repository root):
#   bash tools/analysis_tools/gpu_check.sh
#   GPU_CHECK_DRY_RUN=1 bash tools/analysis_tools/gpu_check.sh   # print only
#
# Env:
#   OUT                 output folder (default work_dirs/gpu_check)
#   PYTHON              interpreter (default: python, else python3)
#   WHEELS_DIR          folder of wheels installed first with
#                       pip install --no-index --find-links (for a machine
#                       without network; see below)
#   GPU_CHECK_DRY_RUN   1: print the commands, run nothing, need no GPU
#   GPU_CHECK_BUDGET_S  wall-clock budget of all steps (default 720); each
#                       step's timeout is cut to what is left, and a step
#                       with under 20 s left is skipped
#   GPU_CHECK_FORCE     1: run the detection / segmentation steps even when
#                       check_env says mmcv's ops cannot serve them
#
# Preparing WHEELS_DIR (on a machine with network, same Python version and
# platform as the GPU machine, e.g. Python 3.11 on x86_64 Linux):
#   pip download -d wheels --only-binary=:all: --python-version 3.11 \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
#       mmengine==0.10.7 mmpretrain==1.2.0 mmcv-lite==2.1.0 mmdet==3.3.0 \
#       mmsegmentation==1.2.2 pycocotools ftfy regex 'numpy<2' \
#       opencv-python==4.10.0.84
#   pip wheel --no-deps -w wheels .          # this package (optional: the
#                                            # script also uses PYTHONPATH)
# mmcv-lite (no compiled ops) is enough for pretraining only: mmdet and
# mmseg import mmcv.ops. For steps 2b/2c put a CUDA-built mmcv 2.1.0 wheel
# (mmcv-2.1.0-*.whl) in the folder instead, built for the GPU machine's
# torch: MIXMAE_MMCV_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 bash tools/setup_env.sh
# leaves it in ~/.cache/mixmae_mm/wheels/torch-<ver>-cp311-x86_64-cu<cuda>-sm90/;
# when such a wheel is there it is installed instead of mmcv-lite. The GPU
# machine's torch is used as it is; the folder should not hold a torch.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
OUT="${OUT:-work_dirs/gpu_check}"
DRY_RUN="${GPU_CHECK_DRY_RUN:-0}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-720}"
FORCE="${GPU_CHECK_FORCE:-0}"
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(command -v python || command -v python3 || echo python3)"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
DATA="$OUT/data"
LOGS="$OUT/logs"

CFGS=configs/mixmae
PRETRAIN_CFG=$CFGS/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py
DET_CFG=$CFGS/benchmarks/mmdet/mask-rcnn_swin-b-p4-w14-mixmae-pre_fpn
DET_CFG=${DET_CFG}_amp-1x_coco.py
SEG_CFG=$CFGS/benchmarks/mmseg/swin-base-patch4-window14-mixmae-pre_upernet
SEG_CFG=${SEG_CFG}_8xb2-amp-160k_ade20k-512x512.py

# Overrides shared by the three training runs: batch 2, two workers that
# exit with the run, a log line per iteration, no validation (its loop,
# dataloader and evaluator go together), no pretrained checkpoint.
COMMON_OPTS=(
    train_dataloader.batch_size=2
    train_dataloader.num_workers=2
    train_dataloader.persistent_workers=False
    default_hooks.logger.interval=1
    val_cfg=None val_dataloader=None val_evaluator=None
)
# Pretraining: epoch-based (600 epochs); the first 4 images give one epoch
# of 2 iterations, so the schedulers stay as in the paper config. No
# checkpoint (1.4 GB with the optimizer state): OUT stays small enough to
# copy back from a rented machine (the CPU tests cover the atomic save).
PRETRAIN_OPTS=(
    "train_dataloader.dataset.data_root=$DATA/imagenet"
    train_dataloader.dataset.indices=4
    train_cfg.max_epochs=1
    default_hooks.checkpoint.save_last=False
)
# Mask R-CNN: epoch-based 1x; the demo COCO categories by name (the model
# keeps COCO's 80 classes), 4 images = 1 epoch of 2 iterations; its
# checkpoint hook saves every epoch, so no save at all (interval 1000).
DET_OPTS=(
    "train_dataloader.dataset.data_root=$DATA/coco/"
    train_dataloader.dataset.metainfo.classes=circle,square,triangle
    train_dataloader.dataset.indices=4
    train_cfg.max_epochs=1
    model.backbone.init_cfg=None
    default_hooks.checkpoint.interval=1000
    default_hooks.checkpoint.save_last=False
)
# UperNet: iteration-based 160k with an infinite sampler (its checkpoint
# interval is 16000 iterations: no save); mmengine turns the config's SyncBN
# into BN in a non-distributed run.
SEG_OPTS=(
    "train_dataloader.dataset.data_root=$DATA/ade/ADEChallengeData2016"
    train_cfg.max_iters=2
    train_cfg.val_interval=1000
    model.backbone.init_cfg=None
    default_hooks.checkpoint.save_last=False
)
BENCH=tools/analysis_tools/benchmark.py
BENCH_OPTS=(--device cuda --dtype bf16 --steps 20 --warmup 3)
# compiled runs: eager and compiled side by side; no memory subprocesses
# and no fp32 reference (their time goes to the compilation instead)
COMPILE_OPTS=(--batch 32 --compile --no-mem --no-fp32-ref)

log() { printf '[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
quote() { printf '%q ' "$@" | sed 's/ $//'; }

# ------------------------------------------------------------ dry run / GPU
if [[ "$DRY_RUN" != "1" ]]; then
    if ! "$PYTHON" -c 'import sys, torch
sys.exit(not torch.cuda.is_available())' >/dev/null 2>&1; then
        echo "gpu_check: CUDA is not available to $PYTHON" \
            "(torch.cuda.is_available() is False, or torch is missing);" \
            "run this on a CUDA machine, or set GPU_CHECK_DRY_RUN=1 to print" \
            "the commands" >&2
        exit 2
    fi
    mkdir -p "$OUT" "$LOGS"
fi

START=$SECONDS
STEP_NAMES=()
STEP_STATUS=()
STEP_SECONDS=()
STEP_LOGS=()

# run_step NAME TIMEOUT_S OUTFILE CMD...: runs CMD with stdout+stderr in
# OUTFILE (stderr in $STEP_STDERR instead when that is set), bounded by
# TIMEOUT_S and the remaining budget; records the result and never stops
# the script.
run_step() {
    local name="$1" limit="$2" outfile="$3"
    shift 3
    if [[ "$DRY_RUN" == "1" ]]; then
        echo "+ $(quote "$@")"
        return 0
    fi
    local left=$((BUDGET_S - (SECONDS - START)))
    if ((left < 20)); then
        log "SKIP $name: budget spent"
        record "$name" "SKIPPED (budget)" 0 "$outfile"
        return 0
    fi
    ((limit > left)) && limit=$left
    log "RUN  $name (limit ${limit}s): $(quote "$@")"
    local t0=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" >"$outfile" \
        2>"${STEP_STDERR:-$outfile}" || rc=$?
    local status="OK"
    if ((rc == 124 || rc == 137)); then
        status="TIMEOUT (${limit}s)"
    elif ((rc != 0)); then
        status="FAILED (rc $rc)"
    fi
    log "$status $name in $((SECONDS - t0))s; log: $outfile"
    ((rc == 0)) || tail -n 5 "$outfile" | sed 's/^/    /'
    record "$name" "$status" $((SECONDS - t0)) "$outfile"
}

record() {
    STEP_NAMES+=("$1")
    STEP_STATUS+=("$2")
    STEP_SECONDS+=("$3")
    STEP_LOGS+=("$4")
}

# skip_step NAME REASON: record a step that cannot run here.
skip_step() {
    if [[ "$DRY_RUN" == "1" ]]; then
        return 0
    fi
    log "SKIP $1: $2"
    record "$1" "SKIPPED ($2)" 0 "-"
}

# ready TASK: check_env.json says TASK (detection / segmentation) can run.
ready() {
    [[ "$FORCE" == "1" ]] && return 0
    "$PYTHON" - "$OUT/check_env.json" "$1" <<'EOF' >/dev/null 2>&1
import json, sys
sys.exit(not json.load(open(sys.argv[1]))['ready'][sys.argv[2]])
EOF
}

if [[ "$DRY_RUN" == "1" ]]; then
    echo "GPU_CHECK_DRY_RUN=1: the commands this check runs (OUT=$OUT):"
else
    log "output: $OUT; python: $PYTHON; budget ${BUDGET_S}s"
fi

# ------------------------------------------------------------ 0. wheels
if [[ -n "${WHEELS_DIR:-}" ]]; then
    MMCV_REQ="mmcv-lite==2.1.0"
    if compgen -G "$WHEELS_DIR/mmcv-2.1.0-*.whl" >/dev/null; then
        MMCV_REQ="mmcv==2.1.0"
    fi
    # the machine's own python may be "externally managed" (PEP 668)
    export PIP_BREAK_SYSTEM_PACKAGES=1
    run_step wheels 240 "$LOGS/00_wheels.log" \
        "$PYTHON" -m pip install --disable-pip-version-check --no-index \
        --find-links "$WHEELS_DIR" mmengine==0.10.7 mmpretrain==1.2.0 \
        "$MMCV_REQ" mmdet==3.3.0 mmsegmentation==1.2.2 pycocotools ftfy regex
fi

# ------------------------------------------------------------ 1. check_env
STEP_STDERR="$LOGS/01_check_env.err" \
    run_step check_env 90 "$OUT/check_env.json" \
    "$PYTHON" tools/check_env.py --json
if [[ "$DRY_RUN" != "1" ]]; then
    # the JSON goes to its file; the readable report to the log
    "$PYTHON" tools/check_env.py >"$LOGS/01_check_env.txt" 2>&1 || true
    grep -E -A1 '^  (WARN|MISSING|UNSUPPORTED) ' "$LOGS/01_check_env.txt" \
        || true
fi

# ------------------------------------------------------------ 2. training
run_step demo_data 120 "$LOGS/02_demo_data.log" \
    "$PYTHON" tools/misc/make_demo_data.py --out "$DATA"

run_step train_pretrain 150 "$LOGS/03_train_pretrain.log" \
    "$PYTHON" tools/train.py "$PRETRAIN_CFG" --work-dir "$OUT/pretrain" \
    --cfg-options "${COMMON_OPTS[@]}" "${PRETRAIN_OPTS[@]}"

run_step train_pretrain_compiled 180 "$LOGS/03b_train_pretrain_compiled.log" \
    "$PYTHON" tools/train.py "$PRETRAIN_CFG" \
    --work-dir "$OUT/pretrain_compiled" \
    --cfg-options "${COMMON_OPTS[@]}" "${PRETRAIN_OPTS[@]}" compile=True

if [[ "$DRY_RUN" == "1" ]] || ready detection; then
    run_step train_maskrcnn 150 "$LOGS/04_train_maskrcnn.log" \
        "$PYTHON" tools/train.py "$DET_CFG" --work-dir "$OUT/maskrcnn" \
        --cfg-options "${COMMON_OPTS[@]}" "${DET_OPTS[@]}"
else
    skip_step train_maskrcnn "check_env: not ready for detection"
fi
if [[ "$DRY_RUN" == "1" ]] || ready segmentation; then
    run_step train_upernet 150 "$LOGS/05_train_upernet.log" \
        "$PYTHON" tools/train.py "$SEG_CFG" --work-dir "$OUT/upernet" \
        --cfg-options "${COMMON_OPTS[@]}" "${SEG_OPTS[@]}"
else
    skip_step train_upernet "check_env: not ready for segmentation"
fi

# ------------------------------------------------------------ 3. benchmark
run_step bench_pretrain 180 "$OUT/benchmark_pretrain.txt" \
    "$PYTHON" "$BENCH" "${BENCH_OPTS[@]}" --batch 32
run_step bench_compiled 240 "$OUT/benchmark_compiled.txt" \
    "$PYTHON" "$BENCH" "${BENCH_OPTS[@]}" "${COMPILE_OPTS[@]}"
run_step bench_cudagraphs 240 "$OUT/benchmark_cudagraphs.txt" \
    "$PYTHON" "$BENCH" "${BENCH_OPTS[@]}" "${COMPILE_OPTS[@]}" \
    --compile-mode reduce-overhead
run_step bench_dense 150 "$OUT/benchmark_dense.txt" \
    "$PYTHON" "$BENCH" "${BENCH_OPTS[@]}" --dense

if [[ "$DRY_RUN" == "1" ]]; then
    exit 0
fi

# ------------------------------------------------------------ summary
{
    echo "gpu_check summary ($(date '+%F %T'), $((SECONDS - START))s," \
        "output $OUT)"
    "$PYTHON" - "$OUT/check_env.json" <<'EOF' 2>/dev/null ||
import json, sys
rep = json.load(open(sys.argv[1]))
v, cuda, mmcv = rep['versions'], rep['cuda'], rep['mmcv']
print('  ' + ', '.join(f'{k} {v.get(k)}' for k in (
    'torch', 'torch_cuda', 'mmengine', 'mmcv', 'mmpretrain', 'mmdet',
    'mmsegmentation')))
print(f"  GPUs: {[d['name'] for d in cuda['devices']]}; mmcv "
      f"{mmcv['flavor']}, ops {mmcv['ops']}, CUDA kernels "
      f"{mmcv['cuda_kernels']}, GPU ops error {mmcv['gpu_ops_error']}")
for c in rep['checks']:
    if c['status'] != 'OK':
        print(f"  {c['status']} {c['name']}: {c['message']}")
print(f"  ready: {rep['ready']}")
EOF
        echo "  check_env.json unreadable"
    printf '  %-24s %-40s %6s  %s\n' step status seconds output
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-24s %-40s %6s  %s\n' "${STEP_NAMES[$i]}" \
            "${STEP_STATUS[$i]}" "${STEP_SECONDS[$i]}" "${STEP_LOGS[$i]}"
        case "${STEP_NAMES[$i]}" in
            train_*)
                # the last logged iteration (loss values, memory, time)
                grep -E 'Epoch\(train\)|Iter\(train\)' "${STEP_LOGS[$i]}" \
                    2>/dev/null | tail -n 1 | sed 's/^.* - INFO - /    /' \
                    || true ;;
            bench_*)
                grep -E 'LOSS CHECK|matmul rate|^RATIO|img/s|GFLOP' \
                    "${STEP_LOGS[$i]}" 2>/dev/null | sed 's/^/    /' || true
                grep -E '^(ours|mmpretrain|mmdet)' "${STEP_LOGS[$i]}" \
                    2>/dev/null | sed 's/^/    /' || true ;;
        esac
    done
} | tee "$OUT/summary.txt"

for s in "${STEP_STATUS[@]}"; do
    [[ "$s" == "OK" ]] || exit 1
done
exit 0
