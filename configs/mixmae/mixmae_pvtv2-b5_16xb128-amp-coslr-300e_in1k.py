# MixMAE with a PVTv2-b5 encoder (depths 3/6/40/3, MLP ratio 4 everywhere;
# 82M encoder parameters, fewer than Swin-L's 196M), 300 epochs on
# ImageNet-1k with the b2 recipe; the decoder stays 8 x 512.
_base_ = './mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='b5'))
