# Ablation: tokens of the mixed image attend across both images (no
# masked self-attention); everything else as the MixMAE toy run.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

model = dict(masked_attention=False)
