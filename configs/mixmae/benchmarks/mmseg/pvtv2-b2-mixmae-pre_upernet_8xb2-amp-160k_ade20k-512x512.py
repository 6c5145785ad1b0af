# UperNet + auxiliary FCN head on ADE20K (512 x 512 crops, 160k iterations,
# 8 x 2 images per step) with a MixMAE-pretrained PVTv2-b2: the protocol of
# the Swin benchmark (swin-base-patch4-window14-mixmae-pre_upernet_...), so
# the two encoders compare under one head and schedule (the PVT papers use
# Semantic FPN, 40k/80k iterations; MixMAE reports UperNet).
# The backbone is mmdet's own `PyramidVisionTransformerV2` (cross-scope:
# mmseg builds `mmdet.` types once mmdet's models are registered) and loads
# the original PVTv2 release format, as the mmdet configs:
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_pvtv2-b2/pvtv2-b2_mixmae-release.pth --no-sha-suffix
# or set another file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# mmdet's PVTv2 has no `get_layer_depth`, so no layer decay: AdamW lr 1e-4,
# wd 0.05 without decay on 1-D parameters, drop path 0.1 (mmdet's default),
# 1500 warm-up iterations then poly decay, AMP, sliding-window inference.
# For layer decay use this project's encoder instead (same weights, read from
# the pretraining checkpoint itself; builds and loads, not benchmarked):
#   backbone=dict(_delete_=True, type='mmpretrain.MixMAEPVTv2', arch='b2',
#       drop_path_rate=0.1, out_indices=(0, 1, 2, 3), init_cfg=dict(
#           type='Pretrained', checkpoint=PRETRAIN_CKPT, prefix='backbone.'))
#   optim_wrapper: constructor='MixMAELayerDecayOptimWrapperConstructor',
#       paramwise_cfg=dict(layer_decay_rate=0.9, flat_decay_mult=0.0)
_base_ = './swin-base-patch4-window14-mixmae-pre_upernet_8xb2-amp-160k_ade20k-512x512.py'  # noqa

custom_imports = dict(
    imports=['mmdet.models', 'mixmae_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.PyramidVisionTransformerV2',
        embed_dims=64,
        num_layers=[3, 4, 6, 3],
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            checkpoint='work_dirs/mixmae_pvtv2-b2/'
            'pvtv2-b2_mixmae-release.pth')),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
# the Swin benchmark's optimizer and schedule, without layer decay
optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, flat_decay_mult=0.0))
