# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Patchify / unpatchify for any H x W (row-major patches, (p, q, c))."""
from torch import Tensor


def patchify(imgs: Tensor, patch_size: int) -> Tensor:
    """Images (B, C, H, W) -> patches (B, L, P*P*C), L = (H/P)*(W/P),
    each patch flattened in (row, column, channel) order as MAE/MixMIM."""
    b, c, h, w = imgs.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f'image size {(h, w)} is not a multiple of the '
                         f'patch size {p}')
    x = imgs.reshape(b, c, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, P, P, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: Tensor, patch_size: int, grid: tuple, chans=3) -> Tensor:
    """Inverse of :func:`patchify`: (B, L, P*P*C) -> (B, C, H, W) for a
    token grid ``(h, w)``."""
    b = x.shape[0]
    h, w = grid
    p = patch_size
    x = x.reshape(b, h, w, p, p, chans).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, chans, h * p, w * p)
