"""The hand-off chain of an encoder family, shared by its tests: tiny
pretraining -> export -> mmdet and mmseg train + test with the toolbox's
own class loading the export, and classification with layer decay loading
the pretraining checkpoint; each through tools/train.py (and tools/test.py)
with the real Runner, datasets and metrics."""
import json

import torch
from _tool_run import ROOT, load_checkpoint, run_tool
from demo_data import make_ade20k, make_coco_instances, make_imagenet_folder
from mmengine.config import Config
from mmpretrain.registry import MODELS

#: The backbone learns nothing in the det/seg runs (lr 0 through mmengine's
#: default constructor; the toolboxes' PVTv2 and SVT have no
#: frozen_stages), so the saved backbone is exactly what the toolbox's init
#: loaded; neck and heads train.
STILL_BACKBONE = 'optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=0.0'


def no_workers(*loaders):
    return [
        opt for loader in loaders
        for opt in (f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False')
    ]


def demo_and_pretrain(root, pretrain_cfg, num_train=4, num_val=2):
    """Demo data (ImageNet-style, COCO, ADE20K) under ``root`` and a
    1-epoch pretraining checkpoint of ``pretrain_cfg``; returns its path."""
    make_imagenet_folder(str(root / 'imagenet'), num_train=num_train,
                         num_val=num_val)
    make_coco_instances(str(root / 'coco'), num_train=4, num_val=4)
    make_ade20k(str(root / 'ade'), num_train=4, num_val=2)
    work = root / 'pretrain'
    run_tool([
        'tools/train.py', pretrain_cfg, '--work-dir', str(work),
        '--cfg-options', f'train_dataloader.dataset.data_root={root}/imagenet',
        'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
        *no_workers('train_dataloader')
    ])
    return work / 'epoch_1.pth'


def pretrain_and_export(root, pretrain_cfg, export_tool, export_name,
                        export_args=()):
    """:func:`demo_and_pretrain` and the checkpoint's export; returns
    (pretraining checkpoint, export, export stdout)."""
    pretrain = demo_and_pretrain(root, pretrain_cfg)
    export = root / export_name
    res = run_tool([export_tool, str(pretrain), str(export), *export_args,
                    '--no-sha-suffix', '--quiet'])
    return pretrain, export, res.stdout


def assert_backbone_is(state_dict, pretrain_path, count):
    """Every backbone tensor (the toolbox's keys are the encoder's) is the
    pretraining one, no other backbone tensor exists, and there are
    ``count`` of them."""
    src = {k: v for k, v in load_checkpoint(pretrain_path)['state_dict']
           .items() if k.startswith('backbone.')}
    assert len(src) == count
    got = {k: v for k, v in state_dict.items() if k.startswith('backbone.')}
    assert sorted(got) == sorted(src)
    for k in src:
        assert torch.equal(got[k], src[k]), k


def det_train_and_test(cfg, root, export, tmp_path, test_options=()):
    """1 epoch of ``cfg`` with the backbone still, then tools/test.py on
    its checkpoint; returns (saved checkpoint, metrics)."""
    work = tmp_path / 'det'
    ann = f'{root}/coco/annotations/instances_val2017.json'
    data = [
        f'train_dataloader.dataset.data_root={root}/coco/',
        f'val_dataloader.dataset.data_root={root}/coco/',
        f'test_dataloader.dataset.data_root={root}/coco/',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
        *no_workers('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    run_tool([
        'tools/train.py', cfg, '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={export}', STILL_BACKBONE,
        *data, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10'
    ])
    ckpt = work / 'epoch_1.pth'
    saved = load_checkpoint(ckpt)
    lrs = {g['lr'] for g in saved['optimizer']['param_groups']}
    assert 0.0 in lrs and max(lrs) > 0  # the heads did train
    out = tmp_path / 'det_metrics.json'
    run_tool([
        'tools/test.py', cfg,
        str(ckpt), '--work-dir',
        str(tmp_path / 'det_test'), '--out',
        str(out), '--cfg-options', *data, *test_options
    ])
    return saved, json.loads(out.read_text())


def seg_train_and_test(cfg, root, export, tmp_path):
    """2 iterations of ``cfg`` with the backbone still, then tools/test.py
    on its checkpoint; returns (saved checkpoint, metrics)."""
    work = tmp_path / 'seg'
    ade = f'{root}/ade'
    data = [
        f'train_dataloader.dataset.data_root={ade}',
        f'val_dataloader.dataset.data_root={ade}',
        f'test_dataloader.dataset.data_root={ade}',
        *no_workers('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    run_tool([
        'tools/train.py', cfg, '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={export}', STILL_BACKBONE,
        *data, 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2'
    ])
    ckpt = work / 'iter_2.pth'
    out = tmp_path / 'seg_metrics.json'
    run_tool([
        'tools/test.py', cfg,
        str(ckpt), '--work-dir',
        str(tmp_path / 'seg_test'), '--out',
        str(out), '--cfg-options', *data
    ])
    metrics = json.loads(out.read_text())
    for key in ('mIoU', 'aAcc', 'mAcc'):
        assert 0.0 <= metrics[key] <= 100.0, metrics
    return load_checkpoint(ckpt), metrics


def classify(cfg, root, pretrain, tmp_path, count):
    """The classifier's init loads the pretraining backbone (checked
    in-process), then 1 epoch through tools/train.py; returns the saved
    optimizer's param groups by name (the layer-decay constructor's) after
    checking the validation wrote one top-1."""
    config = Config.fromfile(str(ROOT / cfg))
    config.model.backbone.init_cfg.checkpoint = str(pretrain)
    model = MODELS.build(config.model)
    model.init_weights()
    assert_backbone_is(model.state_dict(), pretrain, count)

    work = tmp_path / 'cls'
    data = [
        f'train_dataloader.dataset.data_root={root}/imagenet',
        f'val_dataloader.dataset.data_root={root}/imagenet',
        *no_workers('train_dataloader', 'val_dataloader')
    ]
    run_tool([
        'tools/train.py', cfg, '--work-dir',
        str(work), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={pretrain}', *data,
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
    ])
    saved = load_checkpoint(work / 'epoch_1.pth')
    scalars = list(work.glob('*/vis_data/scalars.json'))
    assert len(scalars) == 1
    rows = [json.loads(line) for line in scalars[0].read_text().splitlines()]
    top1 = [r['accuracy/top1'] for r in rows if 'accuracy/top1' in r]
    assert len(top1) == 1 and 0.0 <= top1[0] <= 100.0, rows
    return {g['param_name']: g for g in saved['optimizer']['param_groups']}
