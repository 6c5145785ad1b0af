# Official MixMAE pretraining optimisation: AdamW, base lr 1.5e-4 per 256
# images (batch 2048 -> 1.2e-3), betas (0.9, 0.95), wd 0.05 with no decay on
# 1-D parameters (timm `add_weight_decay`), AMP, 40 warm-up epochs then a
# per-iteration half cosine to 0. Set `max_epochs` and the cosine `end` in the
# top config (`_base_` cannot compute them).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 2048 / 256,
        betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0))

warmup_epochs = 40
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.0,
        by_epoch=True,
        begin=warmup_epochs,
        end=600,
        T_max=600 - warmup_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=600)
# lr above is for 16 GPUs x 128; `--auto-scale-lr` rescales it
auto_scale_lr = dict(base_batch_size=2048)
