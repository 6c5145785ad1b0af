# Baseline: SimMIM-style masked image modelling with the same encoder code
# (SimMIMMixMAESwin: [MASK] tokens replace 60% of the 32-px blocks in the
# encoder input), mmpretrain's SimMIM algorithm, linear decoder and L1 loss
# on the masked pixels; same data, steps, optimizer and schedule as the
# MixMAE toy run.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

model = dict(
    type='SimMIM',
    backbone=dict(type='SimMIMMixMAESwin'),
    neck=dict(
        type='SimMIMLinearDecoder',
        in_channels=256,
        encoder_stride=32,
        _delete_=True),
    head=dict(
        type='SimMIMHead',
        patch_size=4,
        loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3),
        _delete_=True))
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    _delete_=True)
train_pipeline = [
    dict(type='LoadColorImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale={{_base_.img_size}},
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='SimMIMMaskGenerator',
        input_size={{_base_.img_size}},
        mask_patch_size=32,
        model_patch_size=4,
        mask_ratio=0.6),
    dict(type='PackInputs')  # puts the mask into data_sample.mask
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
