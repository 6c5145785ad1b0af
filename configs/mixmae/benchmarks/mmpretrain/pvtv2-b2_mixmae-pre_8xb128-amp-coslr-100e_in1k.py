# Fine-tune a MixMAE-pretrained PVTv2-b2 on ImageNet-1k at 224 px with the
# recipe of the Swin-B fine-tuning
# (swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py): 8 x 128 = 1024
# images per step, AdamW lr 2e-3, wd 0.05 without decay on 1-D parameters,
# drop path 0.1 (PVTv2-b2's), 100 epochs (5 warm-up), RandAugment, mixup 0.8,
# cutmix 1.0, label smoothing 0.1, random erasing 0.25, AMP. Layer decay
# 0.75 over the 18 layer ids of b2 (16 blocks + stem + rest; Swin-B's 0.7
# is for 26): a choice by analogy to MAE's ViT-B, not a measured one.
# The pretraining checkpoint loads directly (same keys, prefix backbone.);
# set it with --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAEPVTv2',
        arch='b2',
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/mixmae_pvtv2-b2_16xb128-amp-coslr-300e_'
            'in1k/epoch_300.pth',
            prefix='backbone.')),
    head=dict(in_channels=512))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
