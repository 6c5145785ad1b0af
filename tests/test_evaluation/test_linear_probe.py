import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mixmae_mm.evaluation import extract_features, linear_probe_accuracy


def test_probe_separates_separable_features():
    torch.manual_seed(0)
    centers = torch.randn(4, 16) * 3
    y = torch.arange(200) % 4
    x = centers[y] + torch.randn(200, 16)
    acc = linear_probe_accuracy(x[:120], y[:120], x[120:], y[120:], 4)
    assert acc == 100.


def test_probe_is_at_chance_without_signal():
    torch.manual_seed(0)
    x = torch.randn(400, 16)
    y = torch.randint(0, 4, (400, ))
    acc = linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:], 4)
    assert acc < 40.  # chance is 25


def test_probe_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match='differ in length'):
        linear_probe_accuracy(
            torch.randn(5, 3), torch.zeros(4, dtype=torch.long),
            torch.randn(2, 3), torch.zeros(2, dtype=torch.long), 2)


def test_extract_features_of_a_classifier():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='MixMAESwin',
                arch=dict(
                    embed_dims=32, depths=[1, 1, 1, 1],
                    num_heads=[1, 2, 4, 8]),
                window_size=(2, 2, 2, 1)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=256),
            data_preprocessor=dict(type='ClsDataPreprocessor')))
    imgs = torch.randint(0, 255, (5, 3, 32, 32), dtype=torch.uint8)
    labels = [2, 0, 1, 1, 2]
    batches = [
        dict(inputs=list(imgs[i:i + 3]),
             data_samples=[DataSample().set_gt_label(v)
                           for v in labels[i:i + 3]])
        for i in (0, 3)
    ]
    feats, ys = extract_features(model, batches)
    assert feats.shape == (5, 256) and ys.tolist() == labels
    with torch.no_grad():
        ref = model.backbone(imgs.float())[0].mean((2, 3))
    torch.testing.assert_close(feats, ref)
