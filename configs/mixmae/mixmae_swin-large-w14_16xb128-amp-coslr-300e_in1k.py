# MixMAE Swin-L/W14, 300 epochs on ImageNet-1k.
_base_ = './mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='large'))
