# Ablation: the mix mask is drawn on the stride-4 patch grid instead of the
# stride-32 grid. Patch merging then blends the two images; at coarser
# stages and in the decoder the top-left patch of a token decides its image.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

data_preprocessor = dict(mix_stride=4)
