# MixMAE with a tiny MixMAETwins (SVT) on the toy-shapes set
# (tools/experiments/toy_reproduction.py, rows twins_*): data, steps,
# optimizer, schedule, mask ratio and decoder of the Swin toy run, only the
# encoder differs. Stage channels 32/64/128/256 as the toy Swin; two blocks
# per stage (SVT alternates a locally-grouped and a global sub-sampled
# block), MLP ratio 4, reduction ratios 8/4/2/1. LSA windows 6/6/6/3 as the
# toy Swin's (SVT's 7 would pad the 24/12/6/3 stage grids of 96-px images
# mostly with zeros): a 24-px window still straddles the 32-px squares, so
# the windows are cut by image; every reduced key covers one square.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAETwins',
        arch=dict(
            embed_dims=[32, 64, 128, 256],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            depths=[2, 2, 2, 2],
            window_sizes=[6, 6, 6, 3]),
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )))
