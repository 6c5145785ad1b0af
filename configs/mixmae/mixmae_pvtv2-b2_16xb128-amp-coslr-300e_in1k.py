# MixMAE with a PVTv2-b2 encoder (mmdet's `PyramidVisionTransformerV2`
# layout, 64/128/320/512 channels, depths 3/4/6/3), 300 epochs on
# ImageNet-1k: the Swin-B 300-epoch config with only the encoder swapped
# (batch 2048, AdamW lr 1.5e-4 x 2048/256, betas (0.9, 0.95), wd 0.05
# without decay on 1-D parameters, 40 warm-up epochs, cosine, AMP, mask
# ratio 0.5, RandomResizedCrop(224, 0.2-1.0) + flip, the 8 x 512 decoder).
# The paper has no PVTv2 results: this recipe is carried over, not tuned.
# The 224 px images mix on the 7 x 7 grid of 32-px squares; every
# spatial-reduction window (stride x sr_ratio = 32 px in each stage) lies
# inside one square, so attention keeps the two images apart.
# Downstream, export the backbone for mmdet's PVTv2 configs with
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_pvtv2-b2/pvtv2-b2_mixmae-release.pth --no-sha-suffix
_base_ = './mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py'

# MixMAE fills in the decoder's input width (512) and patch size (32)
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAEPVTv2',
        arch='b2',
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )))
