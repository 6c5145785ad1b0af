# Masked-attention study (tools/analysis_tools/masked_attention_study.py):
# the MixMAE toy run with a deeper encoder, depths 2-2-4-2 (10 blocks)
# instead of 1-1-2-1 (5), same widths, windows, data and steps.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=32, depths=[2, 2, 4, 2], num_heads=[1, 2, 4, 8])))
