# MixMAE with a Twins-SVT-B encoder (mmseg's `SVT` layout, 96/192/384/768
# channels, depths 2/2/18/2, LSA windows 7, GSA sr 8/4/2/1), 300 epochs on
# ImageNet-1k: the Swin-B 300-epoch config with only the encoder swapped
# (batch 2048, AdamW lr 1.5e-4 x 2048/256, betas (0.9, 0.95), wd 0.05
# without decay on 1-D parameters, 40 warm-up epochs, cosine, AMP, mask
# ratio 0.5, RandomResizedCrop(224, 0.2-1.0) + flip, the 8 x 512 decoder).
# The paper names Twins but reports no Twins results: this recipe is
# carried over, not tuned. With a mix mask the 28-px LSA windows are cut by
# image, every GSA key (stride x sr = 32 px) lies in one square and the
# position encoding convolves each image on its own.
# Downstream, export the backbone for mmseg's own Twins configs with
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/mixmae_twins-svt-b_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_twins-svt-b/svt-b_mixmae-mmseg.pth --no-sha-suffix
_base_ = './mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py'

# MixMAE fills in the decoder's input width (768) and patch size (32)
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAETwins',
        arch='svt-b',
        drop_path_rate=0.0,  # no stochastic depth in pretraining
        out_indices=(3, )))
