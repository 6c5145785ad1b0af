# Copyright (c) OpenMMLab. All rights reserved.
"""Window partition / reverse on channels-last maps (see ``mixmae_swin`` for
the shape legend)."""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """Zero-pad a (B, H, W, C) map at the bottom/right to window multiples.

    Returns:
        Tensor: Shape (B, Hp, Wp, C) with Hp % Wh == 0 and Wp % Ww == 0.
    """
    h, w = x.shape[1:3]
    pad_h = (-h) % window[0]
    pad_w = (-w) % window[1]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x


def window_partition(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """Split a (B, Hp, Wp, C) map into windows.

    Returns:
        Tensor: Shape (B, nW, N, C), windows in row-major order, N = Wh*Ww.
    """
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c)
    return x.transpose(2, 3).reshape(b, -1, wh * ww, c)  # (B, nW, N, C)


def window_reverse(windows: Tensor, window: Tuple[int, int], h: int,
                   w: int) -> Tensor:
    """Inverse of :func:`window_partition`.

    Args:
        windows (Tensor): Shape (B, nW, N, C).
        window (tuple[int, int]): ``(Wh, Ww)``.
        h (int): Padded height Hp.
        w (int): Padded width Wp.

    Returns:
        Tensor: Shape (B, Hp, Wp, C).
    """
    b, _, _, c = windows.shape
    wh, ww = window
    x = windows.view(b, h // wh, w // ww, wh, ww, c)
    return x.transpose(2, 3).reshape(b, h, w, c)
