# UperNet with mmdet's own PVTv2 in the tiny demo arch (b0 widths
# 32/64/160/256, one block per stage) on the generated ADE20K-layout demo
# set: the data, head and schedule of the Swin demo, only the encoder (and,
# since mmdet's class has no layer ids, the optimizer) differ. The backbone
# loads the release-format export of the PVTv2 demo pretraining
# (mixmae_pvtv2-tiny_1xb16-coslr-30e_demo.py):
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/demo/pretrain_pvtv2/epoch_30.pth \
#       work_dirs/demo/pretrain_pvtv2/pvtv2-tiny_mixmae-release.pth \
#       --no-sha-suffix
_base_ = './swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py'

custom_imports = dict(
    imports=['mmdet.models', 'mixmae_mm'], allow_failed_imports=False)
release = 'work_dirs/demo/pretrain_pvtv2/pvtv2-tiny_mixmae-release.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.PyramidVisionTransformerV2',
        embed_dims=32,
        num_layers=[1, 1, 1, 1],
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(checkpoint=release)),
    decode_head=dict(in_channels=[32, 64, 160, 256]),
    auxiliary_head=dict(in_channels=160))
# no layer decay: mmdet's PyramidVisionTransformerV2 has no get_layer_depth
optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, flat_decay_mult=0.0))
