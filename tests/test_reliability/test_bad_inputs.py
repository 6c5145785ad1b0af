"""A clear error (or a stated behaviour) for every bad input of the
MixMAE model: image size, batch size, window size, arch, mask ratio."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mixmae_mm  # noqa: F401

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def preprocessor(**kwargs):
    return MODELS.build(
        dict(type='MixMAEDataPreprocessor', mean=MEAN, std=STD, to_rgb=True,
             **kwargs))


def batch(b, h, w):
    # as default_collate stacks a batch
    return dict(
        inputs=torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8),
        data_samples=None)


@pytest.mark.parametrize('size', [(100, 100), (224, 200), (48, 64)])
def test_image_size_not_divisible_by_32(size):
    with pytest.raises(ValueError) as info:
        preprocessor()(batch(2, *size), training=True)
    msg = str(info.value)
    assert 'divisible by 32' in msg and str(tuple(size)) in msg
    assert 'e.g. 224' in msg  # what to do


def test_batch_of_one_has_nothing_to_mix():
    with pytest.raises(ValueError) as info:
        preprocessor()(batch(1, 64, 64), training=True)
    msg = str(info.value)
    assert 'at least 2' in msg and 'got 1' in msg


@pytest.mark.parametrize('per_pair', [False, True])
def test_odd_batch_middle_sample_is_its_own_partner(per_pair):
    """Stated behaviour: with B odd, sample (B-1)/2 is paired with itself
    (as the official ``x.flip(0)``); its mixed image is the image itself,
    and the other pairs mix as usual."""
    out = preprocessor(per_pair_mask=per_pair)(batch(3, 64, 96),
                                               training=True)
    imgs, mixed, mask = out['inputs']
    assert mask.shape == ((3 if per_pair else 1), 2, 3)
    assert torch.equal(mixed[1], imgs[1])  # middle: unchanged
    assert not torch.equal(mixed[0], imgs[0])  # others: really mixed
    m = mask[0].repeat_interleave(32, 0).repeat_interleave(32, 1)
    assert torch.equal(mixed[0][:, m], imgs[2][:, m])
    assert torch.equal(mixed[0][:, ~m], imgs[0][:, ~m])


def test_odd_batch_trains(tiny_mixmae_cfg):
    model = MODELS.build(tiny_mixmae_cfg)
    data = model.data_preprocessor(batch(3, 64, 64), training=True)
    loss = model.loss(data['inputs'], None)['loss']
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('ratio,extra', [(0., {}), (1., {}), (-0.1, {}),
                                         (1.5, {}),
                                         (0.6, dict(range_mask_ratio=0.5))])
def test_mask_ratio_outside_open_interval(ratio, extra):
    with pytest.raises(ValueError) as info:
        preprocessor(mask_ratio=ratio, **extra)
    assert 'mask_ratio must lie in (0, 1)' in str(info.value)
    assert str(ratio) in str(info.value)


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        MODELS.build(dict(type='MixMAESwin', arch='gigantic'))
    msg = str(info.value)
    assert "unknown arch 'gigantic'" in msg
    assert 'base' in msg and 'large' in msg and 'huge' in msg


def test_window_not_dividing_feature_map_is_padded(tiny_backbone_cfg):
    """Windows 7/7/7/3 on 64 x 96 inputs: stage grids 16x24, 8x12, 4x6,
    2x3; no window size divides them. Padding, not a crash; the outputs
    keep the unpadded grid, and the padding never changes real tokens."""
    cfg = dict(tiny_backbone_cfg, window_size=(7, 7, 7, 3),
               out_indices=(0, 1, 2, 3))
    backbone = MODELS.build(cfg).eval()
    x = torch.randn(2, 3, 64, 96)
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[0, 0, 1] = mask[0, 1, 2] = True
    with torch.no_grad():
        outs = backbone(x, mask)
        plain = backbone(x)
    grids = [(16, 24), (8, 12), (4, 6), (2, 3)]
    for out, p, grid in zip(outs, plain, grids):
        assert tuple(out.shape[2:]) == grid and torch.isfinite(out).all()
        assert tuple(p.shape[2:]) == grid
    # a window size that divides exactly gives the same output shapes
    cfg_exact = dict(cfg, window_size=(8, 4, 2, 1))
    with torch.no_grad():
        exact = MODELS.build(cfg_exact).eval()(x)
    assert [o.shape for o in exact] == [o.shape for o in plain]
