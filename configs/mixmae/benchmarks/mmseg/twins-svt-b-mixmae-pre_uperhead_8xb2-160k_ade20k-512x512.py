# mmseg's own Twins-SVT-B UperNet recipe on ADE20K (512 x 512 crops, 160k
# iterations, 8 x 2 images, AdamW lr 6e-5, poly) with a MixMAE-pretrained
# SVT-B: only the backbone checkpoint differs from
# mmseg::twins/twins_svt-b_uperhead_8xb2-160k_ade20k-512x512.py
# (tests/test_configs.py compares the resolved configs). mmseg's SVT reads
# the export of the pretraining checkpoint:
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/mixmae_twins-svt-b_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_twins-svt-b/svt-b_mixmae-mmseg.pth --no-sha-suffix
# or set another file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmseg::twins/twins_svt-b_uperhead_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            checkpoint='work_dirs/mixmae_twins-svt-b/'
            'svt-b_mixmae-mmseg.pth')))
