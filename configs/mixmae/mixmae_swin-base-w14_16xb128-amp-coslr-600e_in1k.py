# MixMAE Swin-B/W14, 600 epochs on ImageNet-1k: the official recipe
# (Sense-X/MixMIM exp/base_600ep/pretrain.sh; 85.1 top-1 after fine-tuning).
_base_ = [
    '../_base_/models/mixmae_swin-base.py',
    '../_base_/datasets/imagenet_bs128_mixmae.py',
    '../_base_/schedules/mixmae_adamw-amp-coslr_in1k.py',
    '../_base_/default_runtime.py',
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=10, max_keep_ckpts=2))
randomness = dict(seed=0, diff_rank_seed=True)
