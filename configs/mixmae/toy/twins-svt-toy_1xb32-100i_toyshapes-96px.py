# Fine-tuning recipe of the Twins rows of the toy reproduction: the recipe
# of the Swin rows (swin-toy-w6_1xb32-100i_toyshapes-96px.py: data, steps,
# optimizer, layer-wise lr decay 0.85, stochastic depth 0.1) on the tiny
# MixMAETwins of mixmae_twins-svt-toy_1xb32-1000i_toyshapes-96px.py (layer
# ids from MixMAETwins.get_layer_depth: 0 the stem, 1-8 the 8 blocks, 9 the
# rest). tools/experiments/toy_reproduction.py sets model.backbone.init_cfg
# to the pretraining checkpoint; left at None the encoder trains from
# random initialisation.
_base_ = './swin-toy-w6_1xb32-100i_toyshapes-96px.py'

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
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=None))
