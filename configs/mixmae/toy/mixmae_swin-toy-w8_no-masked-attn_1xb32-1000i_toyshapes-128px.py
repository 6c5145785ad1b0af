# Masked-attention study: the 128-px (4 x 4 mix grid) run with masked
# self-attention off; everything else as
# mixmae_swin-toy-w8_1xb32-1000i_toyshapes-128px.py.
_base_ = './mixmae_swin-toy-w8_1xb32-1000i_toyshapes-128px.py'

model = dict(masked_attention=False)
