# MixMAE Swin-B/W14 (official `mixmim_base`) with the 8 x 512 decoder.
model = dict(
    type='MixMAE',
    backbone=dict(
        type='MixMAESwin',
        arch='base',
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )),
    # in_channels and patch_size of neck and head, and the head's
    # dual_reconstruction, are filled in by MixMAE from backbone and neck
    neck=dict(
        type='MixMAEPretrainDecoder', embed_dims=512, depth=8, num_heads=16),
    head=dict(type='MixMAEPretrainHead', norm_pix=True))
