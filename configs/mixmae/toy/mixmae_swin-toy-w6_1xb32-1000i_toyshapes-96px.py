# MixMAE on the toy-shapes set (tools/experiments/toy_reproduction.py): a
# tiny MixMAESwin at 96 px, 1000 iterations of 32 images on 2 CPU cores.
# At 96 px the stage grids are 24/12/6/3 and the windows 6/6/6/3: 16, 4, 1
# and 1 windows per image, as W14 at 224 px (56/28/14/7). The stride-32 mix
# grid is 3 x 3 (4 of 9 blocks from the partner at ratio 0.5).
_base_ = [
    '../../_base_/models/mixmae_swin-base.py',
    '../../_base_/default_runtime.py',
]

img_size = 96
data_root = 'data/toy_shapes'
max_iters = 1000
model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8],
            _delete_=True),
        window_size=(6, 6, 6, 3)),
    neck=dict(embed_dims=128, depth=2, num_heads=4))
data_preprocessor = dict(
    type='MixMAEDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    mask_ratio=0.5)

train_pipeline = [
    dict(type='LoadColorImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
# images are tiny: decoding in the main process is cheaper than workers
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
        data_prefix='unlabelled',
        with_label=False,
        pipeline=train_pipeline))

# the official recipe (AdamW betas (0.9, 0.95), wd 0.05 off for 1-D params,
# linear warm-up, cosine to 0) at the lr of a short run
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=max_iters // 10),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=False,
        begin=max_iters // 10,
        end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
