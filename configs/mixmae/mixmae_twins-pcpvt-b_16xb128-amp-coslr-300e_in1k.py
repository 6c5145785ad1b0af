# MixMAE with a Twins-PCPVT-B encoder (mmseg's `PCPVT` layout,
# 64/128/320/512 channels, depths 3/4/18/3, GSA sr 8/4/2/1), 300 epochs on
# ImageNet-1k: the Twins-SVT-B config (itself the Swin-B 300-epoch recipe)
# with the other Twins family. Export for mmseg with
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/mixmae_twins-pcpvt-b_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_twins-pcpvt-b/pcpvt-b_mixmae-mmseg.pth --no-sha-suffix
_base_ = './mixmae_twins-svt-b_16xb128-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='pcpvt-b'))
