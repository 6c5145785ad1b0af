"""The PVTv2 path end to end (the chain in _transfer_chain.py): pretrain
the tiny MixMAE PVTv2 -> export the backbone in the original PVTv2 release
format -> mmdet RetinaNet (COCO) and mmseg UperNet (ADE20K) with mmdet's
own ``PyramidVisionTransformerV2`` loading the export, and mmpretrain
classification with ``MixMAEPVTv2`` and layer decay loading the
pretraining checkpoint."""
import pytest
from _transfer_chain import (assert_backbone_is, classify, det_train_and_test,
                             pretrain_and_export, seg_train_and_test)

BENCH = 'configs/mixmae/benchmarks'
DET = f'{BENCH}/mmdet/retinanet_pvtv2-tiny-mixmae-pre_fpn_demo_coco.py'
SEG = (f'{BENCH}/mmseg/'
       'pvtv2-tiny-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py')
CLS = f'{BENCH}/mmpretrain/pvtv2-tiny_mixmae-pre_1xb16-coslr-20e_demo.py'
PRETRAIN = 'configs/mixmae/mixmae_pvtv2-tiny_1xb16-coslr-30e_demo.py'
EXPORT = 'tools/model_converters/mixmae_pvtv2_to_release.py'
#: Backbone tensors: 4 stages x (patch embedding 4 + block 14 + norm 2),
#: and the spatial reduction (conv, LN: 4) of the blocks in stages 1-3.
COUNT = 4 * 20 + 3 * 4


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Demo data, a 1-epoch tiny PVTv2 pretraining checkpoint and its
    release-format export."""
    root = tmp_path_factory.mktemp('demo')
    pretrain, release, stdout = pretrain_and_export(
        root, PRETRAIN, EXPORT, 'pvtv2-tiny_mixmae-release.pth')
    assert 'round trip: exact' in stdout
    return root, pretrain, release


def test_mmdet_retinanet_loads_the_export(demo, tmp_path):
    root, pretrain, release = demo
    # after one step every focal-loss score is near its 0.01 prior: without
    # the 0.05 threshold the boxes reach CocoMetric (else it returns {})
    saved, metrics = det_train_and_test(DET, root, release, tmp_path,
                                        ['model.test_cfg.score_thr=0.0'])
    assert_backbone_is(saved['state_dict'], pretrain, COUNT)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50'):
        assert 0.0 <= metrics[key] <= 1.0, metrics


def test_mmseg_upernet_loads_the_export(demo, tmp_path):
    root, pretrain, release = demo
    saved, _ = seg_train_and_test(SEG, root, release, tmp_path)
    assert_backbone_is(saved['state_dict'], pretrain, COUNT)


def test_mmpretrain_classification_with_layer_decay(demo, tmp_path):
    root, pretrain, _ = demo
    groups = classify(CLS, root, pretrain, tmp_path, COUNT)
    # layer decay 0.85 over 6 ids: stem 0, block of stage s at s + 1, the
    # rest (head) with the last block
    expected = {
        'backbone.layers.0.0.projection.weight': 0,
        'backbone.layers.1.0.projection.weight': 2,
        'backbone.layers.2.1.0.attn.attn.in_proj_weight': 3,
        'backbone.layers.3.2.weight': 4,
        'head.fc.weight': 4,
    }
    for name, layer_id in expected.items():
        assert groups[name]['layer_id'] == layer_id, name
        assert groups[name]['lr_scale'] == pytest.approx(0.85**(5 - layer_id))
    assert groups['backbone.layers.0.0.projection.bias']['weight_decay'] == 0
