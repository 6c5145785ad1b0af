# Fine-tune the tiny demo MixMAE encoder on the 4-class demo set (minutes on
# 2 CPU cores). The checkpoint defaults to the demo pretraining run.
_base_ = './swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py'

pretrained = 'work_dirs/demo/pretrain/epoch_30.pth'
model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=32,
            depths=[1, 1, 2, 1],
            num_heads=[1, 2, 4, 8],
            _delete_=True),
        window_size=(8, 8, 8, 4),
        init_cfg=dict(checkpoint=pretrained)),
    head=dict(num_classes=4, in_channels=256),
    # 256 images: no mixup/cutmix, milder crops than the ImageNet recipe
    train_cfg=dict(_delete_=True))

data_preprocessor = dict(num_classes=4)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=128,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
demo_root = 'data/demo/imagenet'
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='CheckedCustomDataset',
        data_root=demo_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=train_pipeline,
        _delete_=True))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='CustomDataset',
        data_root=demo_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        pipeline=test_pipeline,
        _delete_=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# lr 5e-4: at 2e-3 this tiny encoder stays at chance (measured here and in
# the toy reproduction, configs/mixmae/toy/)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.85, flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=19,
        eta_min=1e-6,
        by_epoch=True,
        begin=1,
        end=20,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=20, val_interval=5)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=4),
    checkpoint=dict(interval=10, save_best=None))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
