# Fine-tune a MixMAE-pretrained Swin-B/W14 on ImageNet-1k at 224 px: the
# official recipe (Sense-X/MixMIM exp/base_600ep/finetune.sh; 85.1 top-1
# after 600 pretraining epochs): 8 x 128 = 1024 images per step, AdamW lr
# 5e-4 x 1024/256 = 2e-3, layer decay 0.7 (official grouping: the head is
# decayed once too), wd 0.05 without decay on 1-D parameters, drop path 0.1,
# 100 epochs (5 warm-up), RandAugment m9-mstd0.5, mixup 0.8, cutmix 1.0,
# label smoothing 0.1, random erasing 0.25, AMP.
# Set the pretraining checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    '../../../_base_/default_runtime.py',
]

model = dict(
    # mmpretrain's ImageClassifier with a train_step that compile=True can
    # take (same parameters and state dict)
    type='CompilableImageClassifier',
    backbone=dict(
        type='MixMAESwin',
        arch='base',
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.1,
        out_indices=(3, ),
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # MAE-style head init of the official fine-tuning
        init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

# augmentation seeded per sample (mixmae_mm.datasets.seeded): --resume
# continues exactly whatever the workers
train_dataloader = dict(
    batch_size=128,
    num_workers=10,
    sampler=dict(
        _delete_=True,
        type='SeededSampler',
        sampler=dict(type='DefaultSampler', shuffle=True)),
    dataset=dict(type='CheckedImageNet'))
val_dataloader = dict(batch_size=128, num_workers=10)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=5e-4 * 1024 / 256,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, flat_decay_mult=0.0))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=95,
        eta_min=1e-6,
        by_epoch=True,
        begin=5,
        end=100,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='auto'))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=1024)
