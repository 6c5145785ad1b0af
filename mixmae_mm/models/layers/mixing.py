# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Mixing two images on the stride-32 grid.

Mask convention (used by every producer and consumer in this package):
``mix_mask`` is a bool tensor of shape (M, h, w) on the stride-32 grid
(``h = H // 32``, ``w = W // 32`` for an H x W image: one entry per 32-px
*square* of the grid), with M = 1 (one mask shared by the batch, as the
official code) or M = B (one mask per sample; samples i and B-1-i always
share theirs). True (1) means the token is taken
from the partner image ``x.flip(0)``; False (0) means it is the sample's own.
Sample i is paired with sample B-1-i. The data preprocessor draws it on the
CPU and keeps it there: the encoder plans its token layouts from it on the
host; mixing, the decoder and the loss use a device copy.

Only the fine-mask ablation draws the mask on a finer grid (e.g. stride 4,
the patch-embedding grid); :func:`resample_mask` moves a mask between grids.
"""
from typing import Tuple, Union

import torch
from torch import Tensor


def sample_mix_mask(batch_size: int,
                    grid: Tuple[int, int],
                    mask_ratio: Union[float, Tensor],
                    per_pair: bool = False,
                    generator: torch.Generator = None,
                    device=None) -> Tensor:
    """Draw random mix masks as the official ``random_masking`` does.

    Each mask sets exactly ``int(h * w * mask_ratio)`` squares to True,
    chosen uniformly (the first ones in the argsort of uniform noise).

    Args:
        batch_size (int): B, used for per-pair masks.
        grid (tuple[int, int]): ``(h, w)``, the stride-32 grid.
        mask_ratio (float | Tensor): Share of squares taken from the partner,
            in (0, 1); or a 0-dim tensor (a ratio drawn per batch, used
            without reading it into Python; not checked).
        per_pair (bool): One mask per pair (i, B-1-i) instead of one for
            the whole batch. Defaults to False.
        generator (torch.Generator, optional): RNG for the noise.
        device (torch.device, optional): Where to build the mask.

    Returns:
        Tensor: Bool mask of shape (1, h, w), or (B, h, w) if ``per_pair``.
    """
    h, w = grid
    num_squares = h * w
    if isinstance(mask_ratio, Tensor):
        # int(num_squares * ratio) computed as Python does, in float64
        num_partner = (num_squares * mask_ratio.double()).long()
    elif not 0. < mask_ratio < 1.:
        raise ValueError(f'mask_ratio must lie in (0, 1), got {mask_ratio}')
    else:
        num_partner = partner_squares(num_squares, mask_ratio)
    num_masks = (batch_size + 1) // 2 if per_pair else 1
    noise = torch.rand(
        num_masks, num_squares, generator=generator, device=device)
    # the rank of each square in the noise order; the num_partner first ones
    # go to the partner (the official scatter of argsort()[:, :num_partner])
    rank = noise.argsort(dim=1).argsort(dim=1)  # (M, L)
    mask = (rank < num_partner).view(num_masks, h, w)
    if per_pair:
        # sample i and its partner B-1-i use the same mask
        idx = torch.arange(batch_size, device=device)
        mask = mask[torch.minimum(idx, batch_size - 1 - idx)]  # (B, h, w)
    return mask


def partner_squares(num_squares: int, mask_ratio: float) -> int:
    """Squares a mask of ``num_squares`` gives to the partner at a fixed
    ``mask_ratio``: ``int(num_squares * mask_ratio)``, as the official
    ``random_masking`` marks the first ``int(L * mask_ratio)`` squares of a
    random permutation."""
    return int(num_squares * mask_ratio)


def upsample_mask(mix_mask: Tensor, scale: int) -> Tensor:
    """Nearest-upsample a (M, h, w) mask by an integer factor.

    Returns:
        Tensor: Shape (M, h*scale, w*scale), same dtype.
    """
    if scale == 1:
        return mix_mask
    return mix_mask.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


def resample_mask(mix_mask: Tensor, src_stride: int,
                  dst_stride: int) -> Tensor:
    """Move a mask from the grid of stride ``src_stride`` to the grid of
    stride ``dst_stride`` (both in pixels, one a multiple of the other).

    A finer target grid repeats each entry; a coarser one keeps the top-left
    entry of each square (nearest down-sampling). The coarse case only arises
    in the fine-mask ablation, where a coarse token holds pixels of both
    images and the top-left one decides its group.

    Args:
        mix_mask (Tensor): Mask (M, h, w) on the ``src_stride`` grid.
        src_stride (int): Stride of ``mix_mask``'s grid.
        dst_stride (int): Stride of the wanted grid.

    Returns:
        Tensor: Mask (M, h * src / dst, w * src / dst), same dtype.
    """
    if src_stride >= dst_stride:
        if src_stride % dst_stride:
            raise ValueError(f'stride {src_stride} is not a multiple of '
                             f'{dst_stride}')
        return upsample_mask(mix_mask, src_stride // dst_stride)
    if dst_stride % src_stride:
        raise ValueError(f'stride {dst_stride} is not a multiple of '
                         f'{src_stride}')
    step = dst_stride // src_stride
    return mix_mask[:, ::step, ::step]


def mix_images(x: Tensor, mix_mask: Tensor) -> Tensor:
    """Mix each image with its partner ``x.flip(0)`` on mask-grid blocks.

    Args:
        x (Tensor): Images, shape (B, C, H, W); H and W multiples of the
            mask grid (``H // h`` is the block size, 32 for MixMAE).
        mix_mask (Tensor): Bool mask (M, h, w), see the module docstring.

    Returns:
        Tensor: Mixed images, shape (B, C, H, W).
    """
    scale = x.shape[-1] // mix_mask.shape[-1]
    m = upsample_mask(mix_mask, scale)[:, None]  # (M, 1, H, W)
    return torch.where(m, x.flip(0), x)


def unmix(x1: Tensor, x2: Tensor, mix_mask: Tensor) -> Tensor:
    """Reassemble each image's prediction from the two decoder branches.

    Branch 1 kept own tokens and predicts the positions taken by the partner
    (mask True); branch 2 kept the partner tokens, so its flip predicts the
    sample's own positions (mask False). Every position is taken once.

    Args:
        x1 (Tensor): Branch-1 predictions, shape (B, L, D).
        x2 (Tensor): Branch-2 predictions, shape (B, L, D).
        mix_mask (Tensor): Bool mask (M, h, w) with h*w == L.

    Returns:
        Tensor: Shape (B, L, D), the prediction of every image.
    """
    m = mix_mask.flatten(1)[..., None]  # (M, L, 1)
    return torch.where(m, x1, x2.flip(0))


def check_divisible(size: Tuple[int, int], stride: int, what: str) -> None:
    """Raise a clear error unless both sides of ``size`` divide by stride."""
    if size[0] % stride or size[1] % stride:
        raise ValueError(
            f'{what} must have height and width divisible by {stride} '
            f'(the mixing grid), got {tuple(size)}; resize or crop the '
            f'images to a multiple of {stride}, e.g. 224 or 192')


__all__ = [
    'sample_mix_mask', 'partner_squares', 'upsample_mask', 'resample_mask',
    'mix_images', 'unmix', 'check_divisible'
]
