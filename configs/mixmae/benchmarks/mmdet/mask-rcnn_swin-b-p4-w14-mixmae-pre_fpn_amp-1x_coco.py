# Mask R-CNN + FPN on COCO with a MixMAE-pretrained Swin-B/W14 backbone,
# 1x schedule (12 epochs, 16 images per step), AdamW lr 1e-4, wd 0.05
# without decay on 1-D parameters, layer decay 0.9, drop path 0.2, AMP.
# The paper's exact downstream hyper-parameters are in its appendix, which
# this project could not read; these follow mmdet's Swin Mask R-CNN recipe
# plus the layer decay of hierarchical MIM transfer.
# Set the pretraining checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['mixmae_mm'], allow_failed_imports=False)
# distributed: the DDP wrapper compile=True can take (docs/en/compile.md)
model_wrapper_cfg = dict(type='CompilableDistributedDataParallel')

model = dict(
    # MaskRCNN with a training step compile=True can take (backbone and neck
    # compiled, heads eager): docs/en/compile.md
    type='CompilableMaskRCNN',
    backbone=dict(
        _delete_=True,
        type='mmpretrain.MixMAESwin',
        arch='base',
        window_size=(14, 14, 14, 7),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MixMAELayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, flat_decay_mult=0.0))
auto_scale_lr = dict(enable=False, base_batch_size=16)
