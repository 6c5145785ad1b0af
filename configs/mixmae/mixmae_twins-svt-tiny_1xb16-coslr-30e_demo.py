# A tiny MixMAE Twins-SVT (widths 32/64/128/256, one LSA + one GSA block
# per stage, windows 7) that pretrains on the generated demo set
# (`python tools/misc/make_demo_data.py`) with the schedule of the Swin demo
# (mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py).
# Export for the mmseg/mmdet demo configs (mmseg's own SVT loads it):
#   python tools/model_converters/mixmae_twins_export.py \
#       work_dirs/demo/pretrain_twins/epoch_30.pth \
#       work_dirs/demo/pretrain_twins/svt-tiny_mixmae-mmseg.pth --no-sha-suffix
_base_ = './mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'

# 128 px: stride-32 grid 4 x 4; stage grids 32, 16, 8, 4 (LSA windows
# padded to multiples of 7 as mmseg's)
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAETwins',
        arch=dict(
            embed_dims=[32, 64, 128, 256],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            depths=[2, 2, 2, 2],
            window_sizes=[7, 7, 7, 7]),
        drop_path_rate=0.0,
        out_indices=(3, )))
