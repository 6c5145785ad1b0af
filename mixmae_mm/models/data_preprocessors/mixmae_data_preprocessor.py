# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Normalise a batch, draw the mix mask, mix the images."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from ..layers.mixing import (check_divisible, mix_images, partner_squares,
                             sample_mix_mask)


@MODELS.register_module()
class MixMAEDataPreprocessor(SelfSupDataPreprocessor):
    """Data preprocessor of MixMAE; the one owner of the mix mask.

    It normalises as :class:`SelfSupDataPreprocessor`, draws a random mask
    on the stride-32 grid (see :mod:`mixmae_mm.models.layers.mixing` for the
    convention) on the CPU with the global torch RNG, pairs sample i with
    sample B-1-i and mixes the images on 32 x 32 pixel blocks. Mixing pixels
    before the 4 x 4 patch embedding equals the official token mixing after
    it, because every patch lies inside one block.

    The mask stays on the host even when the images are on a GPU: in eager
    CPU runs the encoder plans its per-stage token layouts from it without
    waiting for a device (see :meth:`MixMAESwin.plan_layouts
    <mixmae_mm.models.backbones.MixMAESwin.plan_layouts>`); compiled or on a
    GPU it takes the static-shape path, which uses a device copy of the
    mask, as mixing does. Nothing here reads a value into Python; a
    compiled ``train_step`` still runs this eagerly (see
    :meth:`MixMAE.train_step <mixmae_mm.models.selfsup.MixMAE.train_step>`).

    With an odd batch the middle sample is its own partner (as the official
    ``x.flip(0)``): it is reconstructed from itself. A batch of one cannot
    be mixed and raises an error.

    Args:
        mean (Sequence[float], optional): Per-channel mean.
        std (Sequence[float], optional): Per-channel std.
        to_rgb (bool): Convert BGR to RGB. Defaults to False.
        mask_ratio (float): Share of 32-px blocks taken from the partner.
            Defaults to 0.5.
        range_mask_ratio (float): The ratio is drawn per batch from
            ``[mask_ratio, mask_ratio + range_mask_ratio)``. Defaults to 0.
        per_pair_mask (bool): One mask per pair instead of one mask shared
            by the batch (the official choice). Defaults to False.
        mix_stride (int): Block side in pixels: the encoder stride, 32
            (a finer stage stride such as 4 only for the fine-mask
            ablation). Defaults to 32.
        **kwargs: Other arguments of :class:`SelfSupDataPreprocessor`.

    Returns of ``forward``: ``dict(inputs=[imgs, mixed, mix_mask],
    data_samples=...)`` with ``imgs`` and ``mixed`` of shape (B, 3, H, W) on
    the batch's device and ``mix_mask`` bool (1 or B, H/s, W/s) on the CPU,
    s = ``mix_stride``.
    """

    def __init__(self,
                 mean: Optional[Sequence[Union[float, int]]] = None,
                 std: Optional[Sequence[Union[float, int]]] = None,
                 to_rgb: bool = False,
                 mask_ratio: float = 0.5,
                 range_mask_ratio: float = 0.,
                 per_pair_mask: bool = False,
                 mix_stride: int = 32,
                 **kwargs) -> None:
        super().__init__(mean=mean, std=std, to_rgb=to_rgb, **kwargs)
        if not 0. < mask_ratio < 1. or range_mask_ratio < 0. or \
                mask_ratio + range_mask_ratio >= 1.:
            raise ValueError(
                f'mask_ratio must lie in (0, 1) and mask_ratio + '
                f'range_mask_ratio below 1, got mask_ratio={mask_ratio}, '
                f'range_mask_ratio={range_mask_ratio}')
        self.mask_ratio = mask_ratio
        self.range_mask_ratio = range_mask_ratio
        self.per_pair_mask = per_pair_mask
        self.mix_stride = mix_stride

    def partner_count(self, grid: Tuple[int, int]) -> Optional[int]:
        """Squares each mask drawn on ``grid`` (h, w) gives to the partner:
        the same for every batch at a fixed ``mask_ratio``, None when
        ``range_mask_ratio`` draws the ratio per batch. The model hands it
        to the encoder, which sizes static per-image cells by it."""
        if self.range_mask_ratio > 0:
            return None
        return partner_squares(grid[0] * grid[1], self.mask_ratio)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        imgs = data['inputs']
        if not isinstance(imgs, torch.Tensor):
            raise TypeError('MixMAEDataPreprocessor expects one view per '
                            f'sample (a tensor batch), got {type(imgs)}')
        b, _, h, w = imgs.shape
        if b < 2:
            raise ValueError(
                'MixMAE mixes sample i with sample B-1-i and needs a batch '
                f'of at least 2 images per device, got {b}')
        check_divisible((h, w), self.mix_stride, 'Pretraining images')
        ratio = self.mask_ratio
        if self.range_mask_ratio > 0:
            # kept a tensor (the float64 value the Python sum had with
            # .item()): nothing is read into Python per batch
            r = torch.rand(()).double()
            ratio = self.mask_ratio + self.range_mask_ratio * r
        # drawn on the host with the global CPU RNG whatever the images'
        # device: the encoder plans its token layouts from a CPU mask
        mix_mask = sample_mix_mask(
            b, (h // self.mix_stride, w // self.mix_stride),
            ratio,
            per_pair=self.per_pair_mask,
            device='cpu')  # (M, h, w)
        mixed = mix_images(imgs, mix_mask.to(imgs.device, non_blocking=True))
        data['inputs'] = [imgs, mixed, mix_mask]
        return data
