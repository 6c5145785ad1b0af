# MixMAE with a PVTv2-b2 encoder, 300 epochs on ImageNet-1k: the recipe of
# the Swin configs (batch 2048, AdamW lr 1.5e-4 x 2048/256, betas (0.9,
# 0.95), wd 0.05 without decay on 1-D parameters, 40 warm-up epochs, cosine,
# AMP, mask ratio 0.5, RandomResizedCrop(224, 0.2-1.0) + flip). The paper has
# no PVTv2 results: this recipe is carried over, not tuned.
# The 224 px images mix on the 7 x 7 grid of 32-px squares; every
# spatial-reduction window (stride x sr_ratio = 32 px in each stage) lies
# inside one square, so attention keeps the two images apart.
# Downstream, export the backbone for mmdet's PVTv2 configs with
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k/epoch_300.pth \
#       work_dirs/mixmae_pvtv2-b2/pvtv2-b2_mixmae-release.pth --no-sha-suffix
_base_ = [
    '../_base_/models/mixmae_pvtv2-b2.py',
    '../_base_/datasets/imagenet_bs128_mixmae.py',
    '../_base_/schedules/mixmae_adamw-amp-coslr_in1k.py',
    '../_base_/default_runtime.py',
]

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=True,
        begin=40,
        end=300,
        T_max=300 - 40,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=300)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=10, max_keep_ckpts=2))
randomness = dict(seed=0, diff_rank_seed=True)
