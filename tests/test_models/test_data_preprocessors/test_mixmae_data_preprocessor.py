import pytest
import torch
from mmpretrain.registry import MODELS

from mixmae_mm.models.layers.mixing import mix_images


def _build(**kwargs):
    return MODELS.build(
        dict(
            type='MixMAEDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True,
            **kwargs))


def _data(b=4, h=64, w=96):
    return dict(inputs=torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8),
                data_samples=None)


def test_outputs_normalised_mixed_and_mask():
    pre = _build()
    data = _data()
    imgs, mixed, mask = pre(data, training=True)['inputs']
    raw = data['inputs'].float()[:, [2, 1, 0]]
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(imgs, (raw - mean) / std)
    assert mask.shape == (1, 2, 3) and mask.sum() == 3
    assert torch.equal(mixed, mix_images(imgs, mask))


def test_per_pair_option():
    _, _, mask = _build(per_pair_mask=True)(_data(), True)['inputs']
    assert mask.shape == (4, 2, 3) and torch.equal(mask, mask.flip(0))


def test_range_mask_ratio():
    pre = _build(mask_ratio=0.25, range_mask_ratio=0.5)
    counts = {pre(_data(h=128, w=128), True)['inputs'][2].sum().item()
              for _ in range(20)}
    assert min(counts) >= 4 and max(counts) < 12 and len(counts) > 1


@pytest.mark.parametrize('ratio,per_pair,size', [(0.5, False, (64, 96)),
                                                 (0.3, True, (224, 224)),
                                                 (0.75, False, (96, 160))])
def test_partner_count_is_what_every_mask_gives(ratio, per_pair, size):
    """The count the model hands the encoder (which sizes static cells by
    it) is the one of every drawn mask; none where the ratio varies."""
    pre = _build(mask_ratio=ratio, per_pair_mask=per_pair)
    grid = (size[0] // 32, size[1] // 32)
    for _ in range(5):
        mask = pre(_data(h=size[0], w=size[1]), True)['inputs'][2]
        assert mask.flatten(1).sum(1).tolist() == \
            [pre.partner_count(grid)] * mask.shape[0]
    assert _build(mask_ratio=ratio,
                  range_mask_ratio=0.1).partner_count(grid) is None


def test_bad_inputs():
    with pytest.raises(ValueError, match='at least 2 images'):
        _build()(_data(b=1), True)
    with pytest.raises(ValueError, match=r'divisible by 32.*\(64, 80\)'):
        _build()(_data(w=80), True)
    with pytest.raises(ValueError, match='mask_ratio'):
        _build(mask_ratio=1.0)
    with pytest.raises(ValueError, match='mask_ratio'):
        _build(mask_ratio=0.6, range_mask_ratio=0.5)


def test_odd_batch_middle_sample_is_its_own_partner():
    imgs, mixed, _ = _build()(_data(b=3), True)['inputs']
    assert torch.equal(mixed[1], imgs[1])
    assert not torch.equal(mixed[0], imgs[0])
