# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Fixed 2D sin-cos position embeddings for any grid, in torch.

The table the official MixMIM code takes from facebookresearch/mae
(``util/pos_embed.py``), computed here by its own torch code from the
formula (no code is copied from that repository, whose licence is not this
project's): the first half of the channels encodes the column (x)
coordinate, the second half the row (y) coordinate, each as
``[sin(p * w), cos(p * w)]`` with ``w_k = 10000 ** (-k / (C / 4))``.
``tests/test_models/test_layers/test_pos_embed.py`` checks it against
MAE's numpy formula.
"""
import torch
from torch import Tensor


def sincos_pos_embed_2d(embed_dims: int,
                        grid_size: tuple,
                        device=None,
                        dtype=torch.float32) -> Tensor:
    """Build the 2D sin-cos table for an ``H x W`` token grid.

    Args:
        embed_dims (int): Channels C, divisible by 4.
        grid_size (tuple[int, int]): ``(H, W)`` of the token grid.
        device (torch.device, optional): Where to build it.
        dtype (torch.dtype): Result dtype. Defaults to float32.

    Returns:
        Tensor: Shape (1, H*W, C), row-major over the grid.
    """
    if embed_dims % 4 != 0:
        raise ValueError(f'sin-cos position embedding needs embed_dims '
                         f'divisible by 4, got {embed_dims}')
    h, w = grid_size
    # float64 as MAE's numpy code, then cast.
    omega = torch.arange(embed_dims // 4, dtype=torch.float64, device=device)
    omega = 1. / 10000**(omega / (embed_dims / 4.))  # (C/4,)
    # the x half depends on the column only and the y half on the row only:
    # sin/cos of (H + W) x C/4 values, then one broadcast copy (16x faster
    # than per token at detection sizes; a table per input size is built
    # whenever it is not cached)
    out_x = torch.arange(w, dtype=torch.float64, device=device)[:, None] \
        * omega  # (W, C/4)
    out_y = torch.arange(h, dtype=torch.float64, device=device)[:, None] \
        * omega  # (H, C/4)
    x_half = torch.cat([out_x.sin(), out_x.cos()], 1).to(dtype)  # (W, C/2)
    y_half = torch.cat([out_y.sin(), out_y.cos()], 1).to(dtype)  # (H, C/2)
    table = torch.cat([
        x_half[None].expand(h, w, -1), y_half[:, None].expand(h, w, -1)
    ], dim=2)  # (H, W, C)
    return table.view(1, h * w, embed_dims)
