# Fine-tune a MixMAE-pretrained Twins-SVT-B on ImageNet-1k at 224 px with the
# recipe of the Swin-B fine-tuning
# (swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py): 8 x 128 images
# per step, AdamW lr 2e-3, wd 0.05 without decay on 1-D parameters, drop
# path 0.3 (mmpretrain's SVT-B), 100 epochs (5 warm-up), RandAugment, mixup
# 0.8, cutmix 1.0, label smoothing 0.1, random erasing 0.25, AMP. Layer
# decay 0.75 over the 26 layer ids of SVT-B (24 blocks + stem + rest; Swin-B
# uses 0.7 for 26): by analogy, not measured.
# The pretraining checkpoint loads directly (same keys, prefix backbone.);
# set it with --cfg-options model.backbone.init_cfg.checkpoint=PATH.
# mmpretrain's own SVT takes the export instead (no layer decay there):
#   python tools/model_converters/mixmae_twins_export.py CKPT OUT --to mmpretrain
#   backbone=dict(type='SVT', arch='base', norm_after_stage=True, ...)
_base_ = './swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAETwins',
        arch='svt-b',
        drop_path_rate=0.3,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/mixmae_twins-svt-b_16xb128-amp-coslr-300e_'
            'in1k/epoch_300.pth',
            prefix='backbone.')),
    head=dict(in_channels=768))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
