# UperNet with the tiny demo MixMAE encoder on the generated ADE20K-layout
# demo set (`python tools/misc/make_demo_data.py`); minutes on 2 CPU cores.
# The checkpoint defaults to the demo pretraining run.
_base_ = './swin-base-patch4-window14-mixmae-pre_upernet_8xb2-amp-160k_ade20k-512x512.py'  # noqa

pretrained = 'work_dirs/demo/pretrain/epoch_30.pth'
crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)  # single CPU process
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(
            embed_dims=32,
            depths=[1, 1, 2, 1],
            num_heads=[1, 2, 4, 8],
            _delete_=True),
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(
        in_channels=[32, 64, 128, 256], channels=64, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)))

data_root = 'data/demo/ade/ADEChallengeData2016'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(256, 128),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=20,
        end=120,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=120, val_interval=60)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=60, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# a fixed seed (heads' initialisation, data order, flips, data workers), so
# that every run of the demo prints the same numbers on the same machine
randomness = dict(seed=0, deterministic=False)
