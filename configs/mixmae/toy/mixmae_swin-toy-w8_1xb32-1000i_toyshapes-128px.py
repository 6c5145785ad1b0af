# Masked-attention study (tools/analysis_tools/masked_attention_study.py):
# the MixMAE toy run at 128 px, so that the stride-32 mix grid is 4 x 4 (8
# of 16 blocks from the partner) instead of 3 x 3. Windows 8/8/8/4 on the
# 32/16/8/4 stage grids keep 16, 4, 1 and 1 windows per image, as the 96-px
# run (and W14 at 224 px). The crops come from the 96-px toy-shapes images,
# upsampled: the same data, so only the grid (and the window) changes.
_base_ = './mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'

img_size = 128
model = dict(backbone=dict(window_size=(8, 8, 8, 4)))
train_pipeline = [
    dict(type='LoadColorImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
