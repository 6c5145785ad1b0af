# Fine-tuning recipe of the PVTv2 rows of the toy reproduction: the recipe
# of the Swin rows (swin-toy-w6_1xb32-100i_toyshapes-96px.py: data, steps,
# optimizer, layer-wise lr decay 0.85, stochastic depth 0.1) on the tiny
# MixMAEPVTv2 of mixmae_pvtv2-toy_1xb32-1000i_toyshapes-96px.py (layer ids
# from MixMAEPVTv2.get_layer_depth: 0 the stem, 1-5 the 5 blocks and the
# head; lr scales 0.85^6 ... 0.85).
# tools/experiments/toy_reproduction.py sets model.backbone.init_cfg to
# dict(type='Pretrained', checkpoint=PRETRAINING_CKPT, prefix='backbone.');
# left at None the encoder trains from random initialisation.
_base_ = './swin-toy-w6_1xb32-100i_toyshapes-96px.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAEPVTv2',
        arch=dict(embed_dims=32, num_layers=[1, 1, 2, 1],
                  num_heads=[1, 2, 4, 8]),
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=None))
