# Mask R-CNN + FPN 1x (12 epochs, 8 x 2 images) on COCO with a
# MixMAE-pretrained Twins-SVT-B. mmdet has no Twins: the backbone is mmseg's
# own `SVT` built in mmdet's scope (`mmseg.SVT`, registered by importing
# mmseg's models), with mmseg's ADE20K settings (qkv bias, stage norms) and
# drop path 0.2; the optimiser is AdamW lr 1e-4, wd 1e-4 (Twins' and PVT's
# COCO setting), the rest mmdet's mask-rcnn_r50_fpn_1x_coco. Export first:
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/mixmae_twins-svt-b_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_twins-svt-b/svt-b_mixmae-mmseg.pth --no-sha-suffix
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmseg.models'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg.SVT',
        embed_dims=[96, 192, 384, 768],
        num_heads=[3, 6, 12, 24],
        mlp_ratios=[4, 4, 4, 4],
        depths=[2, 2, 18, 2],
        windiow_sizes=[7, 7, 7, 7],
        sr_ratios=[8, 4, 2, 1],
        qkv_bias=True,
        norm_after_stage=True,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/mixmae_twins-svt-b/'
            'svt-b_mixmae-mmseg.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
