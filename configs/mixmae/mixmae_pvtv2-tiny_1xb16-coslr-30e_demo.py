# A tiny MixMAE PVTv2 (b0 widths 32/64/160/256, one block per stage) that
# pretrains on the generated demo set (`python tools/misc/make_demo_data.py`)
# with the schedule of the Swin demo
# (mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py): 480 steps of 16 images,
# 176 s on 2 idle CPU cores (0.35 s per step).
# Export for the mmdet/mmseg demo configs (mmdet's PVTv2 loads the release):
#   python tools/model_converters/mixmae_pvtv2_to_release.py \
#       work_dirs/demo/pretrain_pvtv2/epoch_30.pth \
#       work_dirs/demo/pretrain_pvtv2/pvtv2-tiny_mixmae-release.pth \
#       --no-sha-suffix
_base_ = './mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'

# 128 px: stride-32 grid 4 x 4; stage grids 32, 16, 8, 4
model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMAEPVTv2',
        # embed_dims is the per-head width (mmdet's meaning): channels
        # 32 x num_heads [1, 2, 5, 8]
        arch=dict(embed_dims=32, num_layers=[1, 1, 1, 1]),
        drop_path_rate=0.0,
        out_indices=(3, )))
