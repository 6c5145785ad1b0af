# MixMAE Swin-B/W14, 300 epochs on ImageNet-1k (official recipe otherwise).
_base_ = './mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py'

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=True,
        begin=40,
        end=300,
        T_max=300 - 40,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=300)
