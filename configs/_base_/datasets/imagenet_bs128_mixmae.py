# ImageNet-1k pretraining data for MixMAE (official augmentation).
# ImageNet with clear errors for missing/empty folders (mixmae_mm.datasets)
dataset_type = 'CheckedImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='MixMAEDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    mask_ratio=0.5,
    range_mask_ratio=0.0,
    per_pair_mask=False)

train_pipeline = [
    # explicit grayscale/alpha/16-bit handling, named errors on corrupt files
    dict(type='LoadColorImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    # augmentation seeded per sample from (seed, epoch, index): the same
    # whatever the workers, so --resume continues exactly (mixmae_mm.datasets)
    sampler=dict(
        type='SeededSampler', sampler=dict(type='DefaultSampler',
                                           shuffle=True)),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
