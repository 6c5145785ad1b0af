# Masked-attention study: the deeper (2-2-4-2) encoder with masked
# self-attention off; everything else as
# mixmae_swin-toy-w6-d2242_1xb32-1000i_toyshapes-96px.py.
_base_ = './mixmae_swin-toy-w6-d2242_1xb32-1000i_toyshapes-96px.py'

model = dict(masked_attention=False)
