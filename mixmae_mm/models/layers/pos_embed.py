# Copyright (c) OpenMMLab. All rights reserved.
"""Fixed 2D sin-cos position embeddings for any grid, in torch.

Modified from facebookresearch/mae ``util/pos_embed.py`` (the table the
official MixMIM code uses): the first half of the channels encodes the column
(x) coordinate, the second half the row (y) coordinate, each as
``[sin(p * w), cos(p * w)]`` with ``w_k = 10000 ** (-k / (C / 4))``.
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
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64, device=device),
        torch.arange(w, dtype=torch.float64, device=device),
        indexing='ij')  # (H, W) each
    out_x = xs.reshape(-1, 1) * omega  # (H*W, C/4)
    out_y = ys.reshape(-1, 1) * omega  # (H*W, C/4)
    table = torch.cat(
        [out_x.sin(), out_x.cos(),
         out_y.sin(), out_y.cos()], dim=1)  # (H*W, C)
    return table.to(dtype)[None]
