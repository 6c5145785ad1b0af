"""Resident memory stays flat over a stream of input sizes.

Detection and segmentation pad every batch to its own size (multiples of
32), so a dense encoder sees hundreds of sizes in a run; its shape-keyed
caches (position tables, token layouts) are bounded by bytes
(:class:`~mixmae_mm.models.utils.shape_cache.ShapeCache`), so memory stops
growing once they are full. Measured as the process's resident set size
(``/proc/self/statm``) in a fresh subprocess, where no other test's
allocations move it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from demo_data import make_coco_instances

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DET = (ROOT / 'configs/mixmae/benchmarks/mmdet/'
       'mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py')
#: Allowed growth of the resident set after warm-up (the issue's bound).
MAX_GROWTH_MB = 100
NUM_SHAPES = 200
PVT_ARCH = dict(embed_dims=8, num_layers=[1, 2, 1, 1], num_heads=[1, 2, 3, 4],
                mlp_ratios=[2, 4, 2, 3])


def _env():
    # one thread: the figures do not depend on the machine's core count
    return dict(os.environ, PYTHONPATH=f'{ROOT}:{HERE}', OMP_NUM_THREADS='1')


def _stream(cfg: dict, *flags: str) -> dict:
    """Run the probe (``_shape_stream.py``) on an encoder config."""
    res = subprocess.run(
        [sys.executable, str(HERE / '_shape_stream.py'), json.dumps(cfg),
         str(NUM_SHAPES), *flags],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.splitlines()[-1])


@pytest.fixture
def swin_cfg(tiny_backbone_cfg):
    return dict(tiny_backbone_cfg, out_indices=(0, 1, 2, 3))


@pytest.fixture
def pvt_cfg():
    return dict(type='MixMAEPVTv2', arch=dict(PVT_ARCH),
                out_indices=(0, 1, 2, 3))


@pytest.mark.parametrize('encoder', ['swin_cfg', 'pvt_cfg'])
def test_resident_memory_is_flat_over_200_padded_sizes(encoder, request):
    out = _stream(request.getfixturevalue(encoder))
    assert out['shapes'] == NUM_SHAPES  # all distinct
    assert out['growth_mb'] < MAX_GROWTH_MB, out
    # every cache within its budget, whatever the stream
    for held, budget in zip(out['cache_bytes'], out['cache_budgets']):
        assert held <= budget, out


def test_unbounded_caches_would_fail_the_bound(swin_cfg):
    """The control: the same stream with every budget lifted (the caches
    of before) grows past the bound, so the measurement above can fail."""
    out = _stream(swin_cfg, '--unbounded')
    assert out['shapes'] == NUM_SHAPES
    assert out['growth_mb'] > MAX_GROWTH_MB, out


#: The evaluation set: the largest first (the allocator's high-water mark
#: is reached in warm-up), then distinct sizes, multiples of 32 between 480
#: and 800 as mmdet pads COCO-like images. Unbounded caches (the control,
#: ``RecordRSSHook(lift_budgets=True)``) grow 205 MB over it, bounded ones
#: 77 MB: the caches 29 MiB, oneDNN's primitive cache 18 MB, the evaluator's
#: results and the allocator the rest.
EVAL_SIZES = [(800, 800)] + [(h, w) for h in range(480, 801, 64)
                             for w in range(480, 801, 32)][:47]
WARMUP_ITERS = 3


def _evaluate(tmp_path, lift_budgets=False):
    """The demo Mask R-CNN config's evaluation (tools/test.py, mmdet's test
    loop, batch 1) over a COCO set whose images all differ in size; the
    rows ``RecordRSSHook`` wrote, one per image."""
    data = tmp_path / 'coco'
    make_coco_instances(str(data), num_train=0, num_val=len(EVAL_SIZES),
                        sizes=EVAL_SIZES, max_objects=2)
    log = tmp_path / 'rss.jsonl'
    cfg = tmp_path / 'eval.py'
    # images keep their size (scale 1), so every batch is its own size
    cfg.write_text(f'''
_base_ = {str(DET)!r}
custom_imports = dict(imports=['mixmae_mm', '_rss_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RecordRSSHook', path={str(log)!r},
                     lift_budgets={lift_budgets})]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))
]
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(data) + '/'!r}, pipeline=test_pipeline))
test_evaluator = dict(
    ann_file={str(data / 'annotations/instances_val2017.json')!r})
''')
    # the detector's own initialisation: memory, not accuracy, is tested
    ckpt = tmp_path / 'empty.pth'
    torch.save(dict(state_dict={}), ckpt)
    res = subprocess.run(
        [sys.executable, 'tools/test.py', str(cfg), str(ckpt),
         '--work-dir', str(tmp_path / 'work')],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    return [json.loads(line) for line in log.read_text().splitlines()]


def _growth_mb(rows):
    base = rows[WARMUP_ITERS - 1]['rss']
    return (max(r['rss'] for r in rows[WARMUP_ITERS:]) - base) / 2**20


@pytest.mark.slow
def test_mask_rcnn_evaluation_memory_is_flat(tmp_path):
    assert len(set(EVAL_SIZES)) == len(EVAL_SIZES) == 48
    rows = _evaluate(tmp_path)
    # the test loop saw every image, each at its own padded size
    assert [tuple(r['hw']) for r in rows] == EVAL_SIZES
    assert _growth_mb(rows) < MAX_GROWTH_MB, rows[-1]
    for held, budget in zip(rows[-1]['cache_bytes'],
                            rows[-1]['cache_budgets']):
        assert held <= budget, rows[-1]
