"""The user's path end to end: pretrain the tiny MixMAE -> checkpoint ->
fine-tune and evaluate in mmdet (COCO), mmseg (ADE20K) and mmpretrain
(classification), each through tools/train.py and tools/test.py with the
real Runner, datasets and metrics."""
import json

import pytest
import torch
from _tool_run import load_checkpoint, run_tool
from _transfer_chain import demo_and_pretrain

BENCH = 'configs/mixmae/benchmarks'
DET = f'{BENCH}/mmdet/mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py'
SEG = (f'{BENCH}/mmseg/'
       'swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py')
CLS = f'{BENCH}/mmpretrain/swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py'
PRETRAIN = 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Demo data and a 1-epoch tiny pretraining checkpoint."""
    root = tmp_path_factory.mktemp('demo')
    return root, demo_and_pretrain(root, PRETRAIN, num_train=8, num_val=4)


def _assert_backbone_from(ckpt_path, pretrain_path):
    """The fine-tuned backbone (frozen) equals the pretraining backbone."""
    got = load_checkpoint(ckpt_path)['state_dict']
    src = load_checkpoint(pretrain_path)['state_dict']
    keys = [k for k in src if k.startswith('backbone.')]
    assert len(keys) > 50
    for k in keys:
        assert torch.equal(got[k], src[k]), k
    return got


def _common(pretrain, work):
    return [
        '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={pretrain}',
        'model.backbone.frozen_stages=4'  # weights must stay the loaded ones
    ]


def test_mmdet_handoff(demo, tmp_path):
    root, pretrain = demo
    work = tmp_path / 'det'
    data = [
        f'train_dataloader.dataset.data_root={root}/coco/',
        f'val_dataloader.dataset.data_root={root}/coco/',
        f'test_dataloader.dataset.data_root={root}/coco/',
        f'val_evaluator.ann_file={root}/coco/annotations/'
        'instances_val2017.json',
        f'test_evaluator.ann_file={root}/coco/annotations/'
        'instances_val2017.json',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
    ]
    run_tool(['tools/train.py', DET, *_common(pretrain, work),
             *data, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10'])
    ckpt = work / 'epoch_1.pth'
    sd = _assert_backbone_from(ckpt, pretrain)
    assert torch.equal(sd['backbone.norm0.weight'], torch.ones(32))
    out = tmp_path / 'det_metrics.json'
    run_tool(['tools/test.py', DET, str(ckpt), '--work-dir',
             str(tmp_path / 'det_test'), '--out', str(out), '--cfg-options',
             *data])
    metrics = json.loads(out.read_text())
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0.0 <= metrics[key] <= 1.0, metrics


def test_mmseg_handoff(demo, tmp_path):
    root, pretrain = demo
    work = tmp_path / 'seg'
    ade = f'{root}/ade'
    data = [
        f'train_dataloader.dataset.data_root={ade}',
        f'val_dataloader.dataset.data_root={ade}',
        f'test_dataloader.dataset.data_root={ade}',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
    ]
    run_tool(['tools/train.py', SEG, *_common(pretrain, work),
             *data, 'train_cfg.max_iters=4', 'train_cfg.val_interval=100',
             'default_hooks.checkpoint.interval=4'])
    ckpt = work / 'iter_4.pth'
    _assert_backbone_from(ckpt, pretrain)
    out = tmp_path / 'seg_metrics.json'
    run_tool(['tools/test.py', SEG, str(ckpt), '--work-dir',
             str(tmp_path / 'seg_test'), '--out', str(out), '--cfg-options',
             *data])
    metrics = json.loads(out.read_text())
    for key in ('mIoU', 'aAcc', 'mAcc'):
        assert 0.0 <= metrics[key] <= 100.0, metrics


def test_mmpretrain_classification_handoff(demo, tmp_path):
    root, pretrain = demo
    work = tmp_path / 'cls'
    data = [
        f'train_dataloader.dataset.data_root={root}/imagenet',
        f'val_dataloader.dataset.data_root={root}/imagenet',
        f'test_dataloader.dataset.data_root={root}/imagenet',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
    ]
    run_tool(['tools/train.py', CLS, *_common(pretrain, work),
             *data, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10'])
    ckpt = work / 'epoch_1.pth'
    _assert_backbone_from(ckpt, pretrain)
    out = tmp_path / 'cls_metrics.json'
    run_tool(['tools/test.py', CLS, str(ckpt), '--work-dir',
             str(tmp_path / 'cls_test'), '--out', str(out), '--cfg-options',
             *data])
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0, metrics
