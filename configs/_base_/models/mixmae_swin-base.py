# MixMAE Swin-B/W14 (official `mixmim_base`) with the 8 x 512 decoder.
model = dict(
    type='MixMAE',
    backbone=dict(
        type='MixMAESwin',
        arch='base',
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )),
    neck=dict(
        type='MixMAEPretrainDecoder',
        in_channels=1024,  # 8 * embed_dims of the backbone
        embed_dims=512,
        depth=8,
        num_heads=16,
        patch_size=32),
    head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True))
