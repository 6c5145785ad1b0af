# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""The light MixMAE decoder: mask tokens exist only here."""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..layers.pos_embed import sincos_pos_embed_2d
from ..layers.transformer import Block
from ..utils.shape_cache import ShapeCache


@MODELS.register_module()
class MixMAEPretrainDecoder(BaseModule):
    """Dual-branch decoder of MixMAE (official ``forward_decoder``).

    The encoder latent of the mixed images is projected, then duplicated:
    branch 1 keeps each sample's own tokens and puts the mask token where
    the partner's tokens were; branch 2 keeps the partner's tokens and masks
    the own ones. Both branches (batch 2B) go through the ViT blocks and a
    linear prediction of ``patch_size**2 * img_channels`` pixels per token.
    See :mod:`mixmae_mm.models.layers.mixing` for the mask convention.

    Args:
        in_channels (int): Encoder channels of the last stage (1024 for B;
            :class:`MixMAE` fills it in from the backbone).
        embed_dims (int): Decoder width. Defaults to 512.
        depth (int): Decoder blocks. Defaults to 8.
        num_heads (int): Decoder heads. Defaults to 16.
        mlp_ratio (float): MLP ratio. Defaults to 4.
        patch_size (int): Pixels per token side (the encoder stride;
            :class:`MixMAE` fills it in). Defaults to 32.
        img_channels (int): Image channels predicted. Defaults to 3.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-5 (official).
        dual_reconstruction (bool): Build both branches (official). False
            builds branch 1 only (the single-reconstruction ablation).
            Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 1024,
                 embed_dims: int = 512,
                 depth: int = 8,
                 num_heads: int = 16,
                 mlp_ratio: float = 4.,
                 patch_size: int = 32,
                 img_channels: int = 3,
                 norm_eps: float = 1e-5,
                 dual_reconstruction: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.patch_size = patch_size
        self.dual_reconstruction = dual_reconstruction
        self.decoder_embed = nn.Linear(in_channels, embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.decoder_blocks = nn.ModuleList([
            Block(embed_dims, num_heads, mlp_ratio, norm_eps=norm_eps)
            for _ in range(depth)
        ])
        self.decoder_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.decoder_pred = nn.Linear(embed_dims, patch_size**2 * img_channels)
        # one table per grid: bounded, whatever sizes pretraining uses
        self._pos_cache = ShapeCache(name='MixMAEPretrainDecoder.pos_embed')

    def init_weights(self) -> None:
        """Official init: xavier Linear, unit LayerNorm, mask token
        N(0, 0.02) truncated."""
        super().init_weights()
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        trunc_normal_(self.mask_token, std=.02)

    def pos_embed(self, grid: Tuple[int, int], x: Tensor) -> Tensor:
        """Fixed sin-cos table (1, L, D) for the stride-32 grid (the recent
        ones are kept up to the cache's byte budget)."""
        grid = tuple(map(int, grid))  # under tracing, sizes are tensors
        key = (grid, x.device, x.dtype)
        table = self._pos_cache.get(key)
        if table is None:
            table = self._pos_cache.put(
                key, sincos_pos_embed_2d(self.embed_dims, grid, x.device,
                                         x.dtype))
        return table

    def forward(self, latent: Tensor, mix_mask: Tensor) -> Tensor:
        """
        Args:
            latent (Tensor): Encoder output (B, C, h, w) on the stride-32
                grid.
            mix_mask (Tensor): Bool (M, h, w), M in {1, B}, on the device
                of ``latent`` (:class:`MixMAE` moves the host mask once).

        Returns:
            Tensor: Predictions (2B, L, patch_size**2 * img_channels); the
            first B rows come from branch 1 (own tokens kept), the last B
            from branch 2 (partner tokens kept). Only branch 1, (B, L, ...),
            without ``dual_reconstruction``.
        """
        x = self.decoder_embed(latent.flatten(2).transpose(1, 2))  # (B, L, D)
        m = mix_mask.flatten(1)[..., None]  # (M, L, 1)
        token = self.mask_token.to(x.dtype)  # (1, 1, D)
        if self.dual_reconstruction:
            x = torch.cat([torch.where(m, token, x),
                           torch.where(m, x, token)])  # (2B, L, D)
        else:
            x = torch.where(m, token, x)  # (B, L, D)
        x = x + self.pos_embed(latent.shape[2:], x)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))  # (2B|B, L, P*P*3)
