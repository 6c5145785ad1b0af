#!/usr/bin/env bash
# The package as users get it: build the sdist and the wheel, install the
# wheel (not editable) into a fresh venv layered on the stack's packages,
# and use it from folders outside the checkout:
#   1. `import mixmae_mm` resolves to the wheel, one version everywhere
#      (package, wheel file name, `mim list`);
#   2. `mim search mixmae_mm` lists every config the wheel ships;
#   3. `mim train mixmae_mm <demo pretraining config>` runs 2 iterations;
#   4. a downstream project whose own mmdet config inherits
#      `mixmae_mm::` the demo Mask R-CNN config trains 2 iterations through
#      mmdet's own tools/train.py (mmdet/.mim/tools), started with
#      `python -m mixmae_mm` (docs/en/get_started.md says why).
#
# Usage: bash tools/ci/check_wheel.sh   (MIXMAE_STACK picks the stack as in
#        tools/setup_env.sh; MIXMAE_KEEP=1 keeps the scratch folder)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_PY="$(bash "$REPO/tools/setup_env.sh")"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/mixmae_mm_wheel.XXXXXX")"
if [[ "${MIXMAE_KEEP:-0}" != 1 ]]; then
    trap 'rm -rf "$SCRATCH"' EXIT
fi
start=$SECONDS
step() { printf '[wheel %3d s] %s\n' "$((SECONDS - start))" "$*"; }
fail() { printf '[wheel] FAILED: %s\n' "$*" >&2; exit 1; }

step "build sdist + wheel with $("$STACK_PY" -m build --version | cut -d' ' -f1-2)"
# --no-isolation: the stack's pinned setuptools and wheel (requirements/),
# no download; the wheel is built from the sdist, as a package index user's
# pip would from an sdist
(cd "$REPO" && "$STACK_PY" -m build --no-isolation --outdir "$SCRATCH/dist" . \
    >"$SCRATCH/build.log" 2>&1) || { tail -n 30 "$SCRATCH/build.log"; fail "python -m build"; }
WHEEL="$(ls "$SCRATCH"/dist/mixmae_mm-*.whl)"
SDIST="$(ls "$SCRATCH"/dist/mixmae_mm-*.tar.gz)"
step "built $(basename "$SDIST") and $(basename "$WHEEL")"
"$STACK_PY" - "$WHEEL" <<'EOF'
import collections, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
groups = collections.Counter()
for name in names:
    parts = name.split('/')
    depth = 3 if name.startswith('mixmae_mm/.mim/') else 2
    groups['/'.join(parts[:min(depth, len(parts) - 1)]) or parts[0]] += 1
print(f'  wheel: {len(names)} files; ' + ', '.join(
    f'{k} {v}' for k, v in sorted(groups.items())))
need = ['mixmae_mm/.mim/model-index.yml', 'mixmae_mm/.mim/tools/train.py',
        'mixmae_mm/.mim/configs/mixmae/metafile.yml']
missing = [n for n in need if n not in names]
missing += [] if any(n.endswith('/licenses/LICENSE') for n in names) \
    else ['*.dist-info/licenses/LICENSE']
if missing:
    sys.exit(f'the wheel lacks {missing}')
if any('__pycache__' in n or n.endswith('.pyc') for n in names):
    sys.exit('the wheel carries compiled files')
EOF

step "fresh venv layered on the stack's packages"
"$STACK_PY" -m venv "$SCRATCH/venv"
PY="$SCRATCH/venv/bin/python"
# The stack venv's site-packages as a plain path entry: its packages import,
# but its .pth files (among them the editable mixmae_mm's finder) do not run.
# (`python -m venv --system-site-packages` would layer the base interpreter's
# packages, not the stack venv's.)
stack_site="$("$STACK_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
new_site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$stack_site" > "$new_site/zz_mixmae_mm_stack.pth"
# --force-reinstall: the stack's editable mixmae_mm (same version) is
# visible through the layer; pip leaves it alone (outside this venv)
"$PY" -m pip install --disable-pip-version-check --no-index --no-deps \
    --force-reinstall -q "$WHEEL" 2>&1 | grep -v "^Not uninstalling\|outside environment" || true

OUTSIDE="$SCRATCH/elsewhere"
mkdir -p "$OUTSIDE"
cd "$OUTSIDE"
export PYTHONPATH=""  # nothing of the checkout on sys.path

step "python -c 'import mixmae_mm' from $OUTSIDE"
"$PY" - "$new_site" "$REPO" "$WHEEL" <<'EOF'
import os, subprocess, sys
site, repo, wheel = sys.argv[1:]
import mixmae_mm
path = os.path.realpath(mixmae_mm.__file__)
print(f'  mixmae_mm {mixmae_mm.__version__} from {path}')
if not path.startswith(os.path.realpath(site) + os.sep):
    sys.exit(f'mixmae_mm imported from {path}, not from the wheel in {site}')
# (the stack venvs may live inside the checkout: only the checkout itself
# would put its mixmae_mm/ on the path)
if os.path.realpath(repo) in [os.path.realpath(p or os.getcwd())
                              for p in sys.path]:
    sys.exit(f'the checkout {repo} is on sys.path: {sys.path}')
from importlib.metadata import version
wheel_version = os.path.basename(wheel).split('-')[1]
if not mixmae_mm.__version__ == version('mixmae_mm') == wheel_version:
    sys.exit(f'versions differ: package {mixmae_mm.__version__}, '
             f'metadata {version("mixmae_mm")}, wheel {wheel_version}')
out = subprocess.run([sys.executable, '-m', 'mim', 'list'], check=True,
                     capture_output=True, text=True).stdout
# pkg_resources (mim) spells the project name with a dash
rows = [line.split() for line in out.splitlines()
        if line.split()[:1] in (['mixmae_mm'], ['mixmae-mm'])]
print(f'  mim list: {rows}')
if [r[1] for r in rows] != [mixmae_mm.__version__]:
    sys.exit(f'`mim list` shows mixmae_mm as {rows}, expected version '
             f'{mixmae_mm.__version__} once')
EOF

step "mim search mixmae_mm"
"$PY" -m mim search mixmae_mm > "$SCRATCH/search.txt" 2>&1 \
    || { tail -n 20 "$SCRATCH/search.txt"; fail "mim search"; }
"$PY" - "$new_site/mixmae_mm/.mim/configs" "$SCRATCH/search.txt" <<'EOF'
import re, sys
from pathlib import Path
configs, search = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
shipped = sorted(p.stem for p in configs.rglob('*.py')
                 if '_base_' not in p.parts)
listed = sorted(re.findall(r'^config id: (\S+)$', search, flags=re.M))
print(f'  mim search lists {len(listed)} configs; the wheel ships '
      f'{len(shipped)} (not counting _base_)')
if listed != shipped:
    sys.exit(f'not listed: {sorted(set(shipped) - set(listed))}; '
             f'listed but not shipped: {sorted(set(listed) - set(shipped))}')
EOF

step "demo data from the wheel's tools (mixmae_mm/.mim/tools/misc)"
"$PY" "$new_site/mixmae_mm/.mim/tools/misc/make_demo_data.py" --out data/demo \
    > "$SCRATCH/data.log" 2>&1 || { cat "$SCRATCH/data.log"; fail "make_demo_data"; }

# 32 of the 256 images, batch 16, one epoch: 2 iterations
step "mim train mixmae_mm mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py (2 iterations)"
"$PY" -m mim train mixmae_mm mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py -y \
    --work-dir work_dirs/pretrain --cfg-options train_cfg.max_epochs=1 \
    train_dataloader.dataset.indices=32 train_dataloader.num_workers=0 \
    train_dataloader.persistent_workers=False default_hooks.logger.interval=1 \
    > "$SCRATCH/pretrain.log" 2>&1 || { tail -n 40 "$SCRATCH/pretrain.log"; fail "mim train"; }
grep -q "Epoch(train) \[1\]\[2/2\]" "$SCRATCH/pretrain.log" \
    || { tail -n 40 "$SCRATCH/pretrain.log"; fail "mim train did not log iteration 2/2"; }
grep "Epoch(train) \[1\]\[2/2\]" "$SCRATCH/pretrain.log" | sed 's/^.*Epoch/  Epoch/' | cut -c1-120
CKPT="$OUTSIDE/work_dirs/pretrain/epoch_1.pth"
[[ -f "$CKPT" ]] || fail "no checkpoint $CKPT"

step "downstream project: its own mmdet config inherits mixmae_mm::, mmdet's tools/train.py (2 iterations)"
mkdir -p downstream/configs
cat > downstream/configs/my_mask_rcnn.py <<'EOF'
# A user's Mask R-CNN on top of the shipped demo config.
_base_ = 'mixmae_mm::mixmae/benchmarks/mmdet/mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py'  # noqa
custom_imports = dict(imports=['mixmae_mm'], allow_failed_imports=False)
# 8 of the 64 training images, batch 4, one epoch: 2 iterations
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(indices=8))
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1))
EOF
MMDET_TRAIN="$("$PY" -c 'import mmdet, os; print(os.path.join(os.path.dirname(mmdet.__file__), ".mim", "tools", "train.py"))')"
[[ -f "$MMDET_TRAIN" ]] || fail "mmdet ships no $MMDET_TRAIN"
"$PY" -m mixmae_mm "$MMDET_TRAIN" downstream/configs/my_mask_rcnn.py \
    --work-dir work_dirs/downstream \
    --cfg-options "model.backbone.init_cfg.checkpoint=$CKPT" \
    > "$SCRATCH/downstream.log" 2>&1 || { tail -n 40 "$SCRATCH/downstream.log"; fail "mmdet tools/train.py"; }
grep -q "Epoch(train) \[1\]\[2/2\]" "$SCRATCH/downstream.log" \
    || { tail -n 40 "$SCRATCH/downstream.log"; fail "mmdet training did not log iteration 2/2"; }
grep "Epoch(train) \[1\]\[2/2\]" "$SCRATCH/downstream.log" | sed 's/^.*Epoch/  Epoch/' | cut -c1-120
grep -q "MixMAESwin: loaded [0-9]* tensors from $CKPT" "$SCRATCH/downstream.log" \
    || fail "the backbone did not load $CKPT"
if grep -q "Failed to search registry" "$SCRATCH/downstream.log"; then
    fail "a module was built outside its registry scope (see $SCRATCH/downstream.log)"
fi

step "the same config without mixmae_mm imported first stops with mmengine's message"
if "$PY" "$MMDET_TRAIN" downstream/configs/my_mask_rcnn.py --work-dir work_dirs/x \
        > "$SCRATCH/direct.log" 2>&1; then
    fail "mmdet's tools/train.py read a mixmae_mm:: config without the import: update docs/en/get_started.md"
fi
grep -q "mmengine does not support to load mixmae_mm config" "$SCRATCH/direct.log" \
    || { tail -n 20 "$SCRATCH/direct.log"; fail "unexpected failure without the import"; }

step "passed"
