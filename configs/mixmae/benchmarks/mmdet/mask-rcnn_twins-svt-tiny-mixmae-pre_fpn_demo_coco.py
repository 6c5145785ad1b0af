# Mask R-CNN + FPN with mmseg's own SVT in the tiny demo arch (widths
# 32/64/128/256, one LSA + one GSA block per stage) on the generated
# COCO-format demo set: data, heads and schedule of the Swin demo; mmseg's
# class has no layer ids, so no layer decay. The backbone loads the mmseg
# export of the Twins demo pretraining
# (mixmae_twins-svt-tiny_1xb16-coslr-30e_demo.py):
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/demo/pretrain_twins/epoch_30.pth \
#       work_dirs/demo/pretrain_twins/svt-tiny_mixmae-mmseg.pth --no-sha-suffix
_base_ = './mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py'

custom_imports = dict(
    imports=['mixmae_mm', 'mmseg.models'], allow_failed_imports=False)
export = 'work_dirs/demo/pretrain_twins/svt-tiny_mixmae-mmseg.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg.SVT',
        embed_dims=[32, 64, 128, 256],
        num_heads=[1, 2, 4, 8],
        mlp_ratios=[4, 4, 4, 4],
        depths=[2, 2, 2, 2],
        windiow_sizes=[7, 7, 7, 7],
        sr_ratios=[8, 4, 2, 1],
        qkv_bias=True,
        norm_after_stage=True,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=export)))
optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, flat_decay_mult=0.0))
