# MixMAE with a PVTv2-b2 encoder (mmdet's `PyramidVisionTransformerV2`
# layout, 64/128/320/512 channels, depths 3/4/6/3) and the 8 x 512 decoder
# of the Swin models.
model = dict(
    type='MixMAE',
    backbone=dict(
        type='MixMAEPVTv2',
        arch='b2',
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )),
    # in_channels and patch_size of neck and head, and the head's
    # dual_reconstruction, are filled in by MixMAE from backbone and neck
    neck=dict(
        type='MixMAEPretrainDecoder', embed_dims=512, depth=8, num_heads=16),
    head=dict(type='MixMAEPretrainHead', norm_pix=True))
