"""Reconstruction grids: un-normalisation, layout, rendering from a model."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from PIL import Image

from mixmae_mm.models.heads import MixMAEPretrainHead
from mixmae_mm.models.layers.mixing import mix_images, sample_mix_mask
from mixmae_mm.visualization.reconstruction import (
    COLUMNS, HEADER, PAD, reconstruction_grid, render_model_reconstruction,
    to_pixels, unnormalize_prediction)

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _normalize(pixels):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels.float() - mean) / std


@pytest.mark.parametrize('norm_pix', [True, False])
def test_perfect_prediction_gives_back_the_input_pixels(norm_pix):
    pixels = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    imgs = _normalize(pixels)
    target = MixMAEPretrainHead(norm_pix=norm_pix).construct_target(imgs)
    back = unnormalize_prediction(target, imgs, 32, norm_pix)
    assert back.shape == imgs.shape
    out = to_pixels(back, MEAN, STD)  # (B, H, W, 3) RGB
    diff = np.abs(out.astype(int) - pixels.permute(0, 2, 3, 1).numpy())
    assert diff.max() <= 1  # uint8 rounding only
    assert (diff == 0).mean() > 0.99


def test_norm_pix_inverse_uses_each_patch_statistics():
    pixels = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    imgs = _normalize(pixels)
    zero = torch.zeros(1, 4, 32 * 32 * 3)  # predicts every patch's mean
    back = unnormalize_prediction(zero, imgs, 32, norm_pix=True)
    for i, (y, x) in enumerate([(0, 0), (0, 32), (32, 0), (32, 32)]):
        patch = imgs[0, :, y:y + 32, x:x + 32]
        torch.testing.assert_close(back[0, :, y:y + 32, x:x + 32],
                                   patch.mean().expand_as(patch))


def test_to_pixels_flips_bgr():
    imgs = _normalize(torch.tensor([10, 20, 30]).view(1, 3, 1, 1))
    assert to_pixels(imgs, MEAN, STD)[0, 0, 0].tolist() == [10, 20, 30]
    assert to_pixels(imgs, MEAN, STD, bgr=True)[0, 0, 0].tolist() == [
        30, 20, 10
    ]


def _cell(grid, row, col, side):
    y = HEADER + PAD + row * (side + PAD)
    x = PAD + col * (side + PAD)
    return grid[y:y + side, x:x + side]


def _up(img, side):
    return np.asarray(Image.fromarray(img).resize((side, side),
                                                  Image.NEAREST))


def test_grid_layout_and_columns():
    b, size = 4, 64
    pixels = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)
    imgs = _normalize(pixels)
    mask = sample_mix_mask(b, (2, 2), 0.5)  # (1, 2, 2)
    mixed = mix_images(imgs, mask)
    pred = torch.randn(b, 4, 32 * 32 * 3)
    grid = reconstruction_grid(
        imgs, mixed, mask, pred, MEAN, STD, num_pairs=2, min_cell=128)
    side = 128  # 64 px enlarged x2
    assert len(COLUMNS) == 6
    assert grid.dtype == np.uint8
    assert grid.shape == (HEADER + PAD + 2 * (side + PAD),
                          PAD + 6 * (side + PAD), 3)
    px = to_pixels(imgs, MEAN, STD)
    mx = to_pixels(mixed, MEAN, STD)
    rec = to_pixels(unnormalize_prediction(pred, imgs), MEAN, STD)
    for row, (a, p) in enumerate([(0, 3), (1, 2)]):
        np.testing.assert_array_equal(_cell(grid, row, 0, side),
                                      _up(px[a], side))
        np.testing.assert_array_equal(_cell(grid, row, 1, side),
                                      _up(px[p], side))
        np.testing.assert_array_equal(_cell(grid, row, 2, side),
                                      _up(mx[a], side))
        np.testing.assert_array_equal(_cell(grid, row, 4, side),
                                      _up(rec[a], side))
        np.testing.assert_array_equal(_cell(grid, row, 5, side),
                                      _up(rec[p], side))
        # mask: white where the token comes from image B
        m = _cell(grid, row, 3, side)[::64, ::64, 0]  # one pixel per block
        np.testing.assert_array_equal(m == 255, mask[0].numpy())
    # each column has a title: dark pixels in the header strip above it
    for col in range(6):
        x = PAD + col * (side + PAD)
        assert (grid[:HEADER, x:x + side] < 128).any(), COLUMNS[col]
    with pytest.raises(ValueError, match='num_pairs'):
        reconstruction_grid(imgs, mixed, mask, pred, num_pairs=3)


def test_render_from_model_is_seeded_and_leaves_state(tiny_mixmae_cfg):
    model = MODELS.build(tiny_mixmae_cfg)
    model.init_weights()
    model.train()
    batch = dict(
        inputs=torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8),
        data_samples=None)
    state = torch.get_rng_state()
    a = render_model_reconstruction(model, batch, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # RNG untouched
    assert model.training and model.backbone.training
    b = render_model_reconstruction(model, batch, seed=3)
    np.testing.assert_array_equal(a, b)
    # one pair (samples 0 and 3): sample 1 plays no part
    other = dict(batch, inputs=batch['inputs'].clone())
    other['inputs'][1] = 0
    np.testing.assert_array_equal(
        render_model_reconstruction(model, other, seed=3), a)
    # a list of samples (pseudo_collate) works as well
    listed = dict(inputs=list(batch['inputs']))
    np.testing.assert_array_equal(
        render_model_reconstruction(model, listed, seed=3), a)
    with pytest.raises(ValueError, match='pair'):
        render_model_reconstruction(model, dict(inputs=batch['inputs'][:1]))
