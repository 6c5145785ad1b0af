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
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

custom_imports = dict(
    imports=['mmdet.models', 'mixmae_mm'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
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
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
