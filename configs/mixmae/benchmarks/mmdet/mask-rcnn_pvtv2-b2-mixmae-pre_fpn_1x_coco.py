# Mask R-CNN + FPN 1x (12 epochs, 8 x 2 images) on COCO with a
# MixMAE-pretrained PVTv2-b2: mmdet's own `PyramidVisionTransformerV2`
# (drop path 0.1, its default) and the optimiser of mmdet's PVT configs
# (AdamW lr 1e-4, wd 1e-4; the PVTv2 paper's Mask R-CNN setting), the rest
# mmdet's mask-rcnn_r50_fpn_1x_coco. mmdet reads the original PVTv2 release
# format, so export the pretraining checkpoint first:
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_pvtv2-b2/pvtv2-b2_mixmae-release.pth --no-sha-suffix
# or set another file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PyramidVisionTransformerV2',
        embed_dims=64,
        num_layers=[3, 4, 6, 3],
        init_cfg=dict(
            checkpoint='work_dirs/mixmae_pvtv2-b2/'
            'pvtv2-b2_mixmae-release.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
