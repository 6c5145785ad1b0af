"""``CompilableImageClassifier`` is mmpretrain's ``ImageClassifier`` with
another ``train_step``: same state dict, same eager update."""

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def test_same_state_dict_and_same_training_step(tiny_backbone_cfg,
                                                assert_same_train_step):
    cfg = dict(
        backbone=tiny_backbone_cfg,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=256),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3))
    data = dict(
        inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=[DataSample().set_gt_label(i) for i in (0, 2)])
    assert_same_train_step(MODELS, cfg, 'ImageClassifier', data)
