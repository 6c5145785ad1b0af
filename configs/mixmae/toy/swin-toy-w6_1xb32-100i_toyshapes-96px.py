# Fine-tuning recipe of the toy reproduction, the same for every encoder:
# the tiny MixMAESwin of the toy pretraining runs, 8-way classification of
# the labelled toy-shapes images (100 per class), 100 iterations of 32.
# tools/experiments/toy_reproduction.py sets model.backbone.init_cfg to
# dict(type='Pretrained', checkpoint=PRETRAINING_CKPT, prefix='backbone.');
# left at None the encoder trains from random initialisation.
_base_ = ['../../_base_/default_runtime.py']

img_size = 96
data_root = 'data/toy_shapes'
max_iters = 100
model = dict(
    # ImageClassifier with a train_step compile=True can take (same weights
    # and eager step)
    type='CompilableImageClassifier',
    backbone=dict(
        type='MixMAESwin',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        window_size=(6, 6, 6, 3),
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=8,
        in_channels=256,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5)))
data_preprocessor = dict(
    num_classes=8,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadColorImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadColorImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CheckedCustomDataset',
        data_root=data_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CheckedCustomDataset',
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# the official fine-tuning optimizer (AdamW, wd 0.05 off for 1-D params,
# layer-wise lr decay) at the lr of a short run (2e-3 stalls at chance from
# random initialisation at this scale; 5e-4 trains)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.85, flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=max_iters // 10),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=False,
        begin=max_iters // 10,
        end=max_iters)
]
# one evaluation, after the last iteration
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # the accuracy is what counts here: no checkpoints
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=-1,
        save_last=False))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
