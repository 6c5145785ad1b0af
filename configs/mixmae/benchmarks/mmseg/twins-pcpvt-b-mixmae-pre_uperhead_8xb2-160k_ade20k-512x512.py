# mmseg's own Twins-PCPVT-B UperNet recipe on ADE20K with a MixMAE-pretrained
# PCPVT-B: only the backbone checkpoint differs from
# mmseg::twins/twins_pcpvt-b_uperhead_8xb2-160k_ade20k-512x512.py
# (tests/test_configs.py compares the resolved configs). Export with
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/mixmae_twins-pcpvt-b_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_twins-pcpvt-b/pcpvt-b_mixmae-mmseg.pth --no-sha-suffix
_base_ = 'mmseg::twins/twins_pcpvt-b_uperhead_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            checkpoint='work_dirs/mixmae_twins-pcpvt-b/'
            'pcpvt-b_mixmae-mmseg.pth')))
