# Fine-tune the tiny demo MixMAE Twins-SVT (widths 32/64/128/256) on the
# 4-class demo set with layer decay: the data, schedule and optimizer of the
# Swin demo, only the encoder differs. The checkpoint defaults to the Twins
# demo pretraining run (mixmae_twins-svt-tiny_1xb16-coslr-30e_demo.py), read
# directly (same keys, prefix backbone.).
_base_ = './swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py'

pretrained = 'work_dirs/demo/pretrain_twins/epoch_30.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAETwins',
        arch=dict(
            embed_dims=[32, 64, 128, 256],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            depths=[2, 2, 2, 2],
            window_sizes=[7, 7, 7, 7]),
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=256))
