# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""The MixMAE encoder with [MASK] tokens in its input (SimMIM-style
baseline of the toy reproduction)."""
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..layers.mixing import check_divisible
from .base_encoder import is_pretrained
from .mixmae_swin import MixMAESwin


@MODELS.register_module()
class SimMIMMixMAESwin(MixMAESwin):
    """:class:`MixMAESwin` whose masked patches are replaced by a learned
    [MASK] token after the patch embedding, as `SimMIM
    <https://arxiv.org/abs/2111.09886>`_ does.

    The baseline MixMAE is compared against: the same encoder code and
    weights layout, plus one ``mask_token`` (C,). It plugs into mmpretrain's
    ``SimMIM`` algorithm (``SimMIMMaskGenerator`` masks,
    ``SimMIMLinearDecoder``, ``SimMIMHead``). Fine-tuning loads its weights
    into a plain :class:`MixMAESwin`, which drops the token with a report.

    Args:
        **kwargs: Arguments of :class:`MixMAESwin`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, self.embed_dims))

    def init_weights(self) -> None:
        """As :class:`MixMAESwin`; the token is N(0, 0.02) truncated unless
        loaded from a checkpoint."""
        super().init_weights()
        if not is_pretrained(self.init_cfg):
            trunc_normal_(self.mask_token, std=.02)

    def forward(self,
                x: Tensor,
                mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """
        Args:
            x (Tensor): Images (B, 3, H, W), H and W multiples of 32 when
                ``mask`` is given.
            mask (Tensor, optional): (B, H/4, W/4) on the patch grid,
                1 = replace the patch by the [MASK] token (the output of
                ``SimMIMMaskGenerator``). None: the plain encoder.

        Returns:
            tuple[Tensor]: As :meth:`MixMAESwin.forward`.
        """
        if mask is None:
            return super().forward(x)
        b, _, h, w = x.shape
        check_divisible((h, w), self.mix_grid, 'Masked images')
        grid = (h // self.patch_size, w // self.patch_size)
        if tuple(mask.shape) != (b, *grid):
            raise ValueError(f'mask must have shape {(b, *grid)} (one value '
                             f'per {self.patch_size}-px patch), got '
                             f'{tuple(mask.shape)}')
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        m = mask.to(x.device, x.dtype, non_blocking=True)  # (B, H/4, W/4)
        m = m[..., None]  # (B, H/4, W/4, 1)
        x = x * (1. - m) + self.mask_token.to(x.dtype) * m
        return self.forward_stages(x, (h, w))
