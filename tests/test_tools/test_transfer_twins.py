"""The Twins path end to end: pretrain the tiny MixMAE Twins-SVT -> export
the backbone for mmseg's classes -> mmdet Mask R-CNN (COCO, mmseg's ``SVT``
in mmdet's scope) and mmseg UperNet (ADE20K, mmseg's ``SVT``) loading the
export, and mmpretrain classification with ``MixMAETwins`` and layer decay
loading the pretraining checkpoint; each through tools/train.py (and
tools/test.py for mmdet and mmseg) with the real Runner, datasets and
metrics."""
import json

import pytest
import torch
from _tool_run import ROOT, load_checkpoint, run_tool
from demo_data import make_ade20k, make_coco_instances, make_imagenet_folder
from mmengine.config import Config
from mmpretrain.registry import MODELS

pytestmark = pytest.mark.slow  # real Runners, about a minute in all

BENCH = 'configs/mixmae/benchmarks'
DET = f'{BENCH}/mmdet/mask-rcnn_twins-svt-tiny-mixmae-pre_fpn_demo_coco.py'
SEG = (f'{BENCH}/mmseg/'
       'twins-svt-tiny-mixmae-pre_uperhead_1xb4-120i_demo-ade20k-128x128.py')
CLS = f'{BENCH}/mmpretrain/twins-svt-tiny_mixmae-pre_1xb16-coslr-20e_demo.py'
PRETRAIN = 'configs/mixmae/mixmae_twins-svt-tiny_1xb16-coslr-30e_demo.py'
EXPORT = 'tools/model_converters/mixmae_twins_export.py'
#: The backbone learns nothing in the det/seg runs (lr 0 through mmengine's
#: default constructor; mmseg's SVT has no frozen_stages), so the saved
#: backbone is exactly what mmseg's init loaded; neck and heads train.
STILL_BACKBONE = 'optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=0.0'


def _no_workers(*loaders):
    return [
        opt for loader in loaders
        for opt in (f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False')
    ]


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Demo data, a 1-epoch tiny Twins-SVT pretraining checkpoint and its
    mmseg export."""
    root = tmp_path_factory.mktemp('demo')
    make_imagenet_folder(str(root / 'imagenet'), num_train=4, num_val=2)
    make_coco_instances(str(root / 'coco'), num_train=4, num_val=4)
    make_ade20k(str(root / 'ade'), num_train=4, num_val=2)
    work = root / 'pretrain'
    run_tool([
        'tools/train.py', PRETRAIN, '--work-dir', str(work),
        '--cfg-options', f'train_dataloader.dataset.data_root={root}/imagenet',
        'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
        *_no_workers('train_dataloader')
    ])
    pretrain = work / 'epoch_1.pth'
    release = root / 'svt-tiny_mixmae-mmseg.pth'
    res = run_tool([EXPORT, str(pretrain), str(release), '--no-sha-suffix',
                   '--quiet'])
    assert 'saved 140 tensors in mmseg Twins layout' in res.stdout
    return root, pretrain, release


def _pretrained_backbone(pretrain_path):
    src = load_checkpoint(pretrain_path)['state_dict']
    backbone = {k: v for k, v in src.items() if k.startswith('backbone.')}
    # 4 stages x (patch embedding 4 + PEG 2 + LSA block 12 + GSA block 12
    # + stage norm 2), and the spatial reduction (conv, LN: 4) of the GSA
    # blocks in stages 1-3
    assert len(backbone) == 4 * 32 + 3 * 4
    return backbone


def _assert_backbone_is(state_dict, pretrain_path):
    """Every backbone tensor (mmseg's SVT keys are MixMAETwins') is the
    pretraining one, and no other backbone tensor exists."""
    src = _pretrained_backbone(pretrain_path)
    got = {k: v for k, v in state_dict.items() if k.startswith('backbone.')}
    assert sorted(got) == sorted(src)
    for k in src:
        assert torch.equal(got[k], src[k]), k


def test_mmdet_mask_rcnn_loads_the_export(demo, tmp_path):
    root, pretrain, release = demo
    work = tmp_path / 'det'
    ann = f'{root}/coco/annotations/instances_val2017.json'
    data = [
        f'train_dataloader.dataset.data_root={root}/coco/',
        f'val_dataloader.dataset.data_root={root}/coco/',
        f'test_dataloader.dataset.data_root={root}/coco/',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
        *_no_workers('train_dataloader', 'val_dataloader',
                     'test_dataloader')
    ]
    run_tool([
        'tools/train.py', DET, '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={release}', STILL_BACKBONE,
        *data, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10'
    ])
    ckpt = work / 'epoch_1.pth'
    saved = load_checkpoint(ckpt)
    _assert_backbone_is(saved['state_dict'], pretrain)
    lrs = {g['lr'] for g in saved['optimizer']['param_groups']}
    assert 0.0 in lrs and max(lrs) > 0  # the heads did train
    out = tmp_path / 'det_metrics.json'
    run_tool([
        'tools/test.py', DET,
        str(ckpt), '--work-dir',
        str(tmp_path / 'det_test'), '--out',
        str(out), '--cfg-options', *data,
        'model.test_cfg.rcnn.score_thr=0.0'
    ])
    metrics = json.loads(out.read_text())
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0.0 <= metrics[key] <= 1.0, metrics


def test_mmseg_upernet_loads_the_export(demo, tmp_path):
    root, pretrain, release = demo
    work = tmp_path / 'seg'
    ade = f'{root}/ade'
    data = [
        f'train_dataloader.dataset.data_root={ade}',
        f'val_dataloader.dataset.data_root={ade}',
        f'test_dataloader.dataset.data_root={ade}',
        *_no_workers('train_dataloader', 'val_dataloader',
                     'test_dataloader')
    ]
    run_tool([
        'tools/train.py', SEG, '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={release}', STILL_BACKBONE,
        *data, 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2'
    ])
    ckpt = work / 'iter_2.pth'
    _assert_backbone_is(load_checkpoint(ckpt)['state_dict'], pretrain)
    out = tmp_path / 'seg_metrics.json'
    run_tool([
        'tools/test.py', SEG,
        str(ckpt), '--work-dir',
        str(tmp_path / 'seg_test'), '--out',
        str(out), '--cfg-options', *data
    ])
    metrics = json.loads(out.read_text())
    for key in ('mIoU', 'aAcc', 'mAcc'):
        assert 0.0 <= metrics[key] <= 100.0, metrics


def test_mmpretrain_classification_with_layer_decay(demo, tmp_path):
    root, pretrain, _ = demo
    # the classifier's init loads the pretraining backbone (in-process: the
    # layer-decay constructor has no lr_mult, so the run below trains it)
    cfg = Config.fromfile(str(ROOT / CLS))
    cfg.model.backbone.init_cfg.checkpoint = str(pretrain)
    model = MODELS.build(cfg.model)
    model.init_weights()
    _assert_backbone_is(model.state_dict(), pretrain)

    work = tmp_path / 'cls'
    data = [
        f'train_dataloader.dataset.data_root={root}/imagenet',
        f'val_dataloader.dataset.data_root={root}/imagenet',
        *_no_workers('train_dataloader', 'val_dataloader')
    ]
    run_tool([
        'tools/train.py', CLS, '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={pretrain}', *data,
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
    ])
    saved = load_checkpoint(work / 'epoch_1.pth')
    # layer decay 0.85 over 10 ids: stem 0, block j of stage s at
    # 2s + j + 1 (PEG and patch embedding with block 0, stage norm with
    # block 1), the rest (head) with the last block
    groups = {
        g['param_name']: g
        for g in saved['optimizer']['param_groups']
    }
    expected = {
        'backbone.patch_embeds.0.projection.weight': 0,
        'backbone.patch_embeds.1.projection.weight': 3,
        'backbone.position_encodings.1.proj.weight': 3,
        'backbone.layers.2.0.attn.qkv.weight': 5,
        'backbone.layers.2.1.attn.attn.in_proj_weight': 6,
        'backbone.norm_list.3.weight': 8,
        'head.fc.weight': 8,
    }
    for name, layer_id in expected.items():
        assert groups[name]['layer_id'] == layer_id, name
        assert groups[name]['lr_scale'] == pytest.approx(0.85**(9 - layer_id))
    assert groups['backbone.patch_embeds.0.projection.bias'][
        'weight_decay'] == 0
    # the validation after the epoch wrote its accuracy
    scalars = list(work.glob('*/vis_data/scalars.json'))
    assert len(scalars) == 1
    rows = [json.loads(line) for line in scalars[0].read_text().splitlines()]
    top1 = [r['accuracy/top1'] for r in rows if 'accuracy/top1' in r]
    assert len(top1) == 1 and 0.0 <= top1[0] <= 100.0, rows
