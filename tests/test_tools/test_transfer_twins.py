"""The Twins path end to end (the chain in _transfer_chain.py): pretrain
the tiny MixMAE Twins-SVT -> export the backbone for mmseg's classes ->
mmdet Mask R-CNN (COCO, mmseg's ``SVT`` in mmdet's scope) and mmseg UperNet
(ADE20K, mmseg's ``SVT``) loading the export, and mmpretrain classification
with ``MixMAETwins`` and layer decay loading the pretraining checkpoint."""
import pytest
from _transfer_chain import (assert_backbone_is, classify, det_train_and_test,
                             pretrain_and_export, seg_train_and_test)

pytestmark = pytest.mark.slow  # real Runners, about a minute in all

BENCH = 'configs/mixmae/benchmarks'
DET = f'{BENCH}/mmdet/mask-rcnn_twins-svt-tiny-mixmae-pre_fpn_demo_coco.py'
SEG = (f'{BENCH}/mmseg/'
       'twins-svt-tiny-mixmae-pre_uperhead_1xb4-120i_demo-ade20k-128x128.py')
CLS = f'{BENCH}/mmpretrain/twins-svt-tiny_mixmae-pre_1xb16-coslr-20e_demo.py'
PRETRAIN = 'configs/mixmae/mixmae_twins-svt-tiny_1xb16-coslr-30e_demo.py'
EXPORT = 'tools/model_converters/mixmae_twins_export.py'
#: Backbone tensors: 4 stages x (patch embedding 4 + PEG 2 + LSA block 12
#: + GSA block 12 + stage norm 2), and the spatial reduction (conv, LN: 4)
#: of the GSA blocks in stages 1-3.
COUNT = 4 * 32 + 3 * 4


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Demo data, a 1-epoch tiny Twins-SVT pretraining checkpoint and its
    mmseg export."""
    root = tmp_path_factory.mktemp('demo')
    pretrain, export, stdout = pretrain_and_export(
        root, PRETRAIN, EXPORT, 'svt-tiny_mixmae-mmseg.pth')
    assert f'saved {COUNT} tensors in mmseg Twins layout' in stdout
    return root, pretrain, export


def test_mmdet_mask_rcnn_loads_the_export(demo, tmp_path):
    root, pretrain, export = demo
    saved, metrics = det_train_and_test(DET, root, export, tmp_path,
                                        ['model.test_cfg.rcnn.score_thr=0.0'])
    assert_backbone_is(saved['state_dict'], pretrain, COUNT)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0.0 <= metrics[key] <= 1.0, metrics


def test_mmseg_upernet_loads_the_export(demo, tmp_path):
    root, pretrain, export = demo
    saved, _ = seg_train_and_test(SEG, root, export, tmp_path)
    assert_backbone_is(saved['state_dict'], pretrain, COUNT)


def test_mmpretrain_classification_with_layer_decay(demo, tmp_path):
    root, pretrain, _ = demo
    groups = classify(CLS, root, pretrain, tmp_path, COUNT)
    # layer decay 0.85 over 10 ids: stem 0, block j of stage s at
    # 2s + j + 1 (PEG and patch embedding with block 0, stage norm with
    # block 1), the rest (head) with the last block
    expected = {
        'backbone.patch_embeds.0.projection.weight': 0,
        'backbone.patch_embeds.1.projection.weight': 3,
        'backbone.position_encodings.1.proj.weight': 3,
        'backbone.layers.2.0.attn.qkv.weight': 5,
        'backbone.layers.2.1.attn.attn.in_proj_weight': 6,
        'backbone.norm_list.3.weight': 8,
        'head.fc.weight': 8,
    }
    for name, layer_id in expected.items():
        assert groups[name]['layer_id'] == layer_id, name
        assert groups[name]['lr_scale'] == pytest.approx(0.85**(9 - layer_id))
    assert groups['backbone.patch_embeds.0.projection.bias'][
        'weight_decay'] == 0
