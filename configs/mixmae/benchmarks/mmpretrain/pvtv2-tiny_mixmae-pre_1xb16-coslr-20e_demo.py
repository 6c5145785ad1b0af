# Fine-tune the tiny demo MixMAE PVTv2 (b0 widths 32/64/160/256, one block
# per stage) on the 4-class demo set with layer decay: the data, schedule
# and optimizer (lr 5e-4, layer decay 0.85; not tuned for PVTv2) of the
# Swin demo, only the encoder differs. The checkpoint defaults to the PVTv2
# demo pretraining run (mixmae_pvtv2-tiny_1xb16-coslr-30e_demo.py), read
# directly (same keys, prefix backbone.).
_base_ = './swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py'

pretrained = 'work_dirs/demo/pretrain_pvtv2/epoch_30.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAEPVTv2',
        arch=dict(embed_dims=32, num_layers=[1, 1, 1, 1]),
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=256))
