# MixMAE Swin-L/W14 (official `mixmim_large`), 600 epochs on ImageNet-1k.
_base_ = './mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py'

model = dict(backbone=dict(arch='large'))
