# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Relative position bias tables of window attention."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def relative_position_index(window: Tuple[int, int],
                            table_window: Tuple[int, int],
                            device=None) -> Tensor:
    """Index into a ``(2*Th-1)*(2*Tw-1)`` bias table for a window.

    The table is built for the nominal window ``table_window``; a smaller
    window (clamped to a small feature map) reads the table's central part,
    so the same parameters serve every input size.

    Args:
        window (tuple[int, int]): Actual window ``(Wh, Ww)``.
        table_window (tuple[int, int]): Window ``(Th, Tw)`` the table is for.
        device (torch.device, optional): Where to build it.

    Returns:
        Tensor: Long tensor of shape (N, N), N = Wh*Ww.
    """
    wh, ww = window
    th, tw = table_window
    if wh > th or ww > tw:
        raise ValueError(f'window {window} is larger than the window '
                         f'{table_window} of the bias table')
    ys, xs = torch.meshgrid(
        torch.arange(wh, device=device),
        torch.arange(ww, device=device),
        indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
    # Same layout as Swin/MixMIM: (dy + Th - 1) * (2*Tw - 1) + dx + Tw - 1.
    return (rel[0] + th - 1) * (2 * tw - 1) + rel[1] + tw - 1


def resize_rel_pos_table(table: Tensor, src_window: Tuple[int, int],
                         dst_window: Tuple[int, int]) -> Tensor:
    """Resize a bias table by bicubic interpolation (as the official
    ``interpolate_pos_embed``).

    Args:
        table (Tensor): Shape ((2*Sh-1)*(2*Sw-1), nH).
        src_window (tuple[int, int]): Window the table was trained for.
        dst_window (tuple[int, int]): Window to resize to.

    Returns:
        Tensor: Shape ((2*Dh-1)*(2*Dw-1), nH).
    """
    src = (2 * src_window[0] - 1, 2 * src_window[1] - 1)
    dst = (2 * dst_window[0] - 1, 2 * dst_window[1] - 1)
    if src == dst:
        return table
    num_heads = table.shape[1]
    grid = table.T.reshape(1, num_heads, *src).float()  # (1, nH, 2Sh-1, ..)
    grid = F.interpolate(grid, size=dst, mode='bicubic', align_corners=False)
    return grid.reshape(num_heads, -1).T.to(table.dtype)  # (.., nH)
