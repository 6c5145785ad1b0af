# mmdet's RetinaNet + FPN 1x with PVTv2-b2 (mmdet's
# `PyramidVisionTransformerV2`, AdamW lr 1e-4, wd 1e-4, 8 x 2 images),
# initialised from a MixMAE pretraining instead of the supervised ImageNet
# release: only `model.backbone.init_cfg.checkpoint` changes. mmdet reads
# the original PVTv2 release format (`convert_weights=True`), so export the
# pretraining checkpoint first:
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_pvtv2-b2/pvtv2-b2_mixmae-release.pth --no-sha-suffix
# (without --no-sha-suffix the file gets a -<sha8> suffix; set it with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH)
_base_ = 'mmdet::pvt/retinanet_pvtv2-b2_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            checkpoint='work_dirs/mixmae_pvtv2-b2/'
            'pvtv2-b2_mixmae-release.pth')))
