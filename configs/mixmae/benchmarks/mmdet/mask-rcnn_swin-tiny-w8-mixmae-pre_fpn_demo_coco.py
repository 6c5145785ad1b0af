# Mask R-CNN + FPN with the tiny demo MixMAE encoder on the generated COCO-
# format demo set (`python tools/misc/make_demo_data.py`); minutes on 2 CPU
# cores. The checkpoint defaults to the demo pretraining run.
_base_ = './mask-rcnn_swin-b-p4-w14-mixmae-pre_fpn_amp-1x_coco.py'

pretrained = 'work_dirs/demo/pretrain/epoch_30.pth'
classes = ('circle', 'square', 'triangle')
model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=32,
            depths=[1, 1, 2, 1],
            num_heads=[1, 2, 4, 8],
            _delete_=True),
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=3)),
    # fewer proposals and sampled RoIs than COCO's 2000 / 1000 / 512: at
    # most 3 objects per image here, and the RoI ops dominate a CPU step
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))

data_root = 'data/demo/coco/'
img_scale = (160, 128)  # (w, h): the demo images' size
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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

# 320 steps of 4 images (20 epochs of the 64 training images) at lr 1e-3:
# the heads start from scratch and need the steps (48 steps at 4e-4 gave
# bbox mAP 0.02; on this set, 10 epochs at 1e-3 gave 0.23 mid-schedule)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, flat_decay_mult=0.0))
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[16, 19],
        gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=4), checkpoint=dict(interval=10, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# a fixed seed (heads' initialisation, data order, flips, data workers), so
# that every run of the demo prints the same numbers on the same machine
randomness = dict(seed=0, deterministic=False)
