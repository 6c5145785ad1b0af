import pytest
import torch

from mixmae_mm.models.layers.mixing import (mix_images, resample_mask,
                                            sample_mix_mask, unmix,
                                            upsample_mask)


@pytest.mark.parametrize('grid,ratio', [((7, 7), 0.5), ((4, 6), 0.3),
                                        ((2, 2), 0.75)])
def test_mask_count_and_shape(grid, ratio):
    mask = sample_mix_mask(6, grid, ratio)
    assert mask.shape == (1, *grid) and mask.dtype == torch.bool
    # exactly int(L * ratio) cells come from the partner (24 of 49 at 0.5)
    assert mask.sum().item() == int(grid[0] * grid[1] * ratio)


def test_mask_official_count():
    assert sample_mix_mask(2, (7, 7), 0.5).sum() == 24


def test_per_pair_masks_are_symmetric():
    mask = sample_mix_mask(5, (4, 4), 0.5, per_pair=True)
    assert mask.shape == (5, 4, 4)
    assert torch.equal(mask, mask.flip(0))  # i and B-1-i share a mask
    assert not torch.equal(mask[0], mask[1])  # pairs differ (seeded)
    assert (mask.flatten(1).sum(1) == 8).all()


def test_mask_is_deterministic_per_generator():
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    assert torch.equal(
        sample_mix_mask(2, (7, 7), .5, generator=g1),
        sample_mix_mask(2, (7, 7), .5, generator=g2))


@pytest.mark.parametrize('ratio', [0., 1., -0.1, 1.5])
def test_mask_ratio_outside_open_interval(ratio):
    with pytest.raises(ValueError, match='mask_ratio must lie in'):
        sample_mix_mask(2, (7, 7), ratio)


def test_mixing_is_stride32_aligned_and_complementary():
    x = torch.randn(4, 3, 64, 96)
    mask = sample_mix_mask(4, (2, 3), 0.5)
    mixed = mix_images(x, mask)
    for i in range(4):
        for r in range(2):
            for c in range(3):
                blk = (slice(None), slice(32 * r, 32 * r + 32),
                       slice(32 * c, 32 * c + 32))
                src = 3 - i if mask[0, r, c] else i
                # each 32x32 block comes whole from one image
                assert torch.equal(mixed[i][blk], x[src][blk])
    # complementarity: every block of image i is visible exactly once,
    # either in its own mixed image or in its partner's.
    m = upsample_mask(mask, 32)[:, None]
    assert torch.equal(torch.where(m, mixed.flip(0), mixed), x)


def test_upsampled_masks_agree_across_stages():
    mask = sample_mix_mask(2, (3, 5), 0.5)
    s1 = upsample_mask(mask, 8)
    assert torch.equal(s1, upsample_mask(upsample_mask(mask, 2), 4))
    # each stage mask is constant on the cells of the coarser grid
    assert torch.equal(s1[:, ::8, ::8], mask)
    assert torch.equal(s1.float().unfold(1, 8, 8).unfold(2, 8, 8).std(
        (-1, -2)).abs().sum(), torch.tensor(0.))


def test_unmix_takes_each_position_from_the_masked_branch():
    b, L, d = 4, 6, 5
    target = torch.randn(b, L, d)
    mask = sample_mix_mask(b, (2, 3), 0.5)
    m = mask.flatten(1)[..., None]
    garbage = torch.full((b, L, d), 1e6)
    # branch 1 knows own positions taken by the partner (m True);
    # branch 2 (flipped) knows the partner's view of the own positions
    x1 = torch.where(m, target, garbage)
    x2 = torch.where(m, garbage, target.flip(0))
    assert torch.equal(unmix(x1, x2, mask), target)


def test_resample_mask_up_and_down():
    mask = sample_mix_mask(2, (2, 3), 0.5)  # stride 32
    fine = resample_mask(mask, 32, 8)  # (1, 8, 12)
    assert torch.equal(fine, upsample_mask(mask, 4))
    # back to 32: the top-left cell of every 4 x 4 group decides
    assert torch.equal(resample_mask(fine, 8, 32), mask)
    assert resample_mask(mask, 32, 32) is mask
    # a genuinely fine mask: the coarse cell copies its top-left sub-cell
    fine = torch.rand(1, 8, 8) > 0.5
    coarse = resample_mask(fine, 4, 16)  # (1, 2, 2)
    for r in range(2):
        for c in range(2):
            assert coarse[0, r, c] == fine[0, 4 * r, 4 * c]
    with pytest.raises(ValueError, match='not a multiple'):
        resample_mask(fine, 12, 8)
