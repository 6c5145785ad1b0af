# A tiny MixMAE that pretrains on the generated demo set
# (`python tools/misc/make_demo_data.py`) in about a minute on 2 CPU cores.
_base_ = [
    '../_base_/models/mixmae_swin-base.py',
    '../_base_/datasets/imagenet_bs128_mixmae.py',
    '../_base_/default_runtime.py',
]

img_size = 128  # stride-32 grid 4 x 4; stage grids 32, 16, 8, 4
model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8],
            _delete_=True),
        window_size=(8, 8, 8, 4)),
    neck=dict(embed_dims=128, depth=2, num_heads=4))

train_pipeline = [
    dict(type='LoadColorImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        type='CheckedCustomDataset',
        data_root='data/demo/imagenet',
        data_prefix='train',
        with_label=False,
        _delete_=True,
        pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-4 * 16 / 256 * 8, betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0))
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
        eta_min=0.0,
        by_epoch=True,
        begin=1,
        end=30,
        T_max=29,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=4),
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=10, max_keep_ckpts=2))
# the base's hooks plus a reconstruction grid every 160 iterations (10 epochs)
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='MixMAEReconstructionHook', interval=160),
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
