# UperNet + auxiliary FCN head on ADE20K (512 x 512 crops, 160k iterations,
# 8 x 2 images per step) with a MixMAE-pretrained Swin-B/W14 backbone:
# AdamW lr 1e-4, wd 0.05 without decay on 1-D parameters, layer decay 0.9,
# drop path 0.3, 1500 warm-up iterations then poly decay, AMP, sliding-window
# inference (crop 512, stride 341). The paper reports 50.3 mIoU for MixMAE-B
# with its own recipe (its appendix was not readable here; these follow
# mmseg's Swin/MAE UperNet recipes).
# Set the pretraining checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

custom_imports = dict(imports=['mixmae_mm'], allow_failed_imports=False)
# distributed: the DDP wrapper compile=True can take (docs/en/compile.md)
model_wrapper_cfg = dict(type='CompilableDistributedDataParallel')

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    # EncoderDecoder with a training step compile=True can take (backbone
    # and neck compiled, heads eager): docs/en/compile.md
    type='CompilableEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.MixMAESwin',
        arch='base',
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    decode_head=dict(in_channels=[128, 256, 512, 1024], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
