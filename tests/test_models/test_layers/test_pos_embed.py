"""The sin-cos table equals MAE's numpy formula on any grid, square or not,
in every dtype (it is built separably: per row and per column)."""
import numpy as np
import pytest
import torch

from mixmae_mm.models.layers.pos_embed import sincos_pos_embed_2d
from reference.official_mixmim import mae_sincos


def _per_token(embed_dims, h, w):
    """Token (i, j): [sin(j w), cos(j w), sin(i w), cos(i w)] with
    w_k = 10000 ** (-k / (C / 4)), in float64, one token at a time."""
    omega = 1. / 10000**(np.arange(embed_dims // 4) / (embed_dims / 4.))
    rows = []
    for i in range(h):
        for j in range(w):
            rows.append(np.concatenate([np.sin(j * omega), np.cos(j * omega),
                                        np.sin(i * omega), np.cos(i * omega)]))
    return torch.from_numpy(np.stack(rows))[None]  # (1, H*W, C) float64


@pytest.mark.parametrize('embed_dims,grid', [(32, 7), (128, 14), (16, 3)])
def test_square_grid_equals_mae(embed_dims, grid):
    torch.testing.assert_close(
        sincos_pos_embed_2d(embed_dims, (grid, grid)),
        mae_sincos(embed_dims, grid), rtol=0, atol=1e-7)


@pytest.mark.parametrize('embed_dims,hw', [(32, (3, 5)), (16, (6, 1)),
                                           (8, (1, 4))])
def test_non_square_grid_equals_the_formula(embed_dims, hw):
    got = sincos_pos_embed_2d(embed_dims, hw, dtype=torch.float64)
    assert got.shape == (1, hw[0] * hw[1], embed_dims)
    torch.testing.assert_close(got, _per_token(embed_dims, *hw), rtol=0,
                               atol=1e-12)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16,
                                   torch.float16])
def test_low_precision_is_the_cast_float64_table(dtype):
    exact = sincos_pos_embed_2d(32, (5, 9), dtype=torch.float64)
    got = sincos_pos_embed_2d(32, (5, 9), dtype=dtype)
    assert got.dtype == dtype
    assert torch.equal(got, exact.to(dtype))


def test_embed_dims_not_divisible_by_4_is_refused():
    with pytest.raises(ValueError, match='divisible by 4, got 30'):
        sincos_pos_embed_2d(30, (2, 2))
