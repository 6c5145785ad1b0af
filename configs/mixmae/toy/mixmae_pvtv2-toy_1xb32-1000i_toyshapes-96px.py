# MixMAE with a tiny MixMAEPVTv2 on the toy-shapes set
# (tools/experiments/toy_reproduction.py, rows pvtv2_*): data, steps,
# optimizer, schedule, mask ratio and decoder of the Swin toy run, only the
# encoder differs. Stage channels 32/64/128/256 and depths 1/1/2/1 as the
# toy Swin (PVTv2's [1, 2, 5, 8] heads would make stage 3 160 wide), with
# PVTv2's own MLP ratios 8/8/4/4 and reduction ratios 8/4/2/1. At 96 px the
# stage grids are 24/12/6/3 and every reduced key covers one 32-px square
# (stride x sr = 4 x 8, 8 x 4, 16 x 2, 32 x 1 px); the stride-32 mix grid is
# 3 x 3, as in the Swin toy run. Encoder parameters: 1.98M here, 1.43M for the
# toy Swin (the extra are PVTv2's spatial-reduction and 3x3 patch-embedding
# convolutions); multiply-adds of one 96-px image 56M vs 42M.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAEPVTv2',
        # embed_dims is the per-head width (mmdet's meaning): channels
        # 32 x num_heads
        arch=dict(embed_dims=32, num_layers=[1, 1, 2, 1],
                  num_heads=[1, 2, 4, 8]),
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )))
