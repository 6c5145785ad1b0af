# Ablation: single reconstruction. The decoder builds branch 1 only (own
# tokens kept, mask tokens on the partner's positions) and the loss covers
# the positions it predicts (the head follows the decoder's setting);
# everything else as the MixMAE toy run.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

model = dict(neck=dict(dual_reconstruction=False))
