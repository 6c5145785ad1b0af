# RetinaNet + FPN with mmdet's own PVTv2 in the tiny demo arch (b0 widths
# 32/64/160/256, one block per stage) on the generated COCO-format demo set
# (`python tools/misc/make_demo_data.py`); minutes on 2 CPU cores. The
# backbone loads the release-format export of the PVTv2 demo pretraining
# (mixmae_pvtv2-tiny_1xb16-coslr-30e_demo.py):
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/demo/pretrain_pvtv2/epoch_30.pth \
#       work_dirs/demo/pretrain_pvtv2/pvtv2-tiny_mixmae-release.pth \
#       --no-sha-suffix
_base_ = './retinanet_pvtv2-b2-mixmae-pre_fpn_1x_coco.py'

release = 'work_dirs/demo/pretrain_pvtv2/pvtv2-tiny_mixmae-release.pth'
classes = ('circle', 'square', 'triangle')
model = dict(
    backbone=dict(
        embed_dims=32,
        num_layers=[1, 1, 1, 1],
        init_cfg=dict(checkpoint=release)),
    neck=dict(in_channels=[32, 64, 160, 256], out_channels=64),
    bbox_head=dict(
        in_channels=64, feat_channels=64, stacked_convs=2, num_classes=3))

data_root = 'data/demo/coco/'
img_scale = (160, 128)  # (w, h): the demo images' size
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# mmdet's PVT optimiser (AdamW, wd 1e-4) at the Swin demo's lr 4e-4
optim_wrapper = dict(optimizer=dict(lr=4e-4))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=6)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[9, 11],
        gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=4), checkpoint=dict(interval=6, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# a fixed seed (heads' initialisation, data order, flips, data workers), so
# that every run of the demo prints the same numbers on the same machine
randomness = dict(seed=0, deterministic=False)
