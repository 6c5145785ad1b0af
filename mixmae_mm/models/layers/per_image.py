# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Operations that keep the two mixed images apart, shared by the encoders
whose tokens meet outside attention windows (PVTv2, Twins):

* :func:`group_conv`: a convolution of each image on its own;
* :func:`same_image_key_mask`: queries see only the reduced keys of their
  image;
* :class:`SpatialReductionAttention`: attention over ``sr x sr``-reduced keys
  (PVTv2's and Twins' GSA, one module with mmdet's / mmseg's names);
* :class:`PatchEmbed`: convolution (per image) and LayerNorm, mmcv's names
  (PVTv2's overlapping and Twins' non-overlapping embeddings).

Shapes: ``B`` batch, ``C`` channels, ``(H, W)`` token grid, ``L = H*W``,
``L_k`` reduced keys, ``nH`` heads, ``Dh`` head dim, ``M`` mix masks (1 or
B; convention in :mod:`mixmae_mm.models.layers.mixing`).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dense_windows import padded_size


def nlc_to_nchw(x: Tensor, hw: Tuple[int, int]) -> Tensor:
    """(B, L, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], -1, *hw).contiguous()


def nchw_to_nlc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, L, C)."""
    return x.flatten(2).transpose(1, 2).contiguous()


def group_conv(conv: nn.Module, x: Tensor, in_groups: Optional[Tensor],
               out_groups: Optional[Tensor]) -> Tensor:
    """``conv`` of each image of a mixed input on its own: every output
    position sees only its group's input, zeros elsewhere (as the zero
    padding at an image border).

    Args:
        conv (nn.Module): A convolution (any kernel, stride, padding).
        x (Tensor): Input (B, C, H_in, W_in).
        in_groups (Tensor, optional): Bool image groups (M, H_in, W_in),
            True: partner image. None: plain ``conv(x)``.
        out_groups (Tensor, optional): Groups (M, H_out, W_out).
    """
    if in_groups is None:
        return conv(x)
    m_in = in_groups[:, None]  # (M, 1, H_in, W_in)
    # the own-image and the partner part of every sample in one call (2B)
    both = torch.cat([x.masked_fill(m_in, 0), x.masked_fill(~m_in, 0)])
    own, partner = conv(both).chunk(2)  # (B, C', H_out, W_out) each
    # each position takes one group's result, so the bias counts once
    return torch.where(out_groups[:, None], partner, own)


def same_image_key_mask(tokens: Tensor, keys: Tensor) -> Tensor:
    """(M, H, W) query groups and (M, H_k, W_k) reduced-key groups -> bool
    (M, 1, L, L_k), True where query and key belong to the same image."""
    return (tokens.flatten(1)[:, :, None] == keys.flatten(1)[:, None, :]
            )[:, None]


class SpatialReductionAttention(nn.Module):
    """Multi-head attention whose keys and values come from a ``sr x sr``
    stride-``sr`` convolution of the token map (the tokens when sr is 1).

    ``attn`` only holds the weights of mmdet's PVTv2 / mmseg's Twins GSA
    (``in_proj_*`` as rows [q; k; v], ``out_proj``); the forward uses them
    with scaled_dot_product_attention, the same math as
    ``nn.MultiheadAttention`` plus an optional mask.
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int,
                 qkv_bias: bool = True, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.attn = nn.MultiheadAttention(embed_dims, num_heads,
                                          bias=qkv_bias)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, sr_ratio)
            # mmdet's PVTv2: 1e-6; mmseg's Twins (the same module): 1e-5
            self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)

    def forward(self, x: Tensor, hw: Tuple[int, int],
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """(B, L, C) -> (B, L, C); ``attn_mask`` (M, 1, L, L_k) bool."""
        b, n, c = x.shape
        kv = x
        if self.sr_ratio > 1:
            # windows never straddle two 32-px squares under a mix mask
            kv = self.norm(nchw_to_nlc(self.sr(nlc_to_nchw(x, hw))))
        w_q, w_kv = self.attn.in_proj_weight.split([c, 2 * c])
        b_q = b_kv = None
        if self.attn.in_proj_bias is not None:
            b_q, b_kv = self.attn.in_proj_bias.split([c, 2 * c])
        dh = c // self.num_heads
        q = F.linear(x, w_q, b_q).view(b, n, self.num_heads, dh)
        q = q.transpose(1, 2)  # (B, nH, L, Dh)
        k, v = F.linear(kv, w_kv, b_kv).view(b, -1, 2, self.num_heads,
                                             dh).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask)
        out = out.transpose(1, 2).reshape(b, n, c)  # (B, L, C)
        return self.attn.out_proj(out)


class PatchEmbed(nn.Module):
    """Patch embedding with mmcv's names (``projection``, ``norm``): a
    convolution, then LayerNorm on the tokens.

    PVTv2 overlaps its patches (kernel 7 or 3, padding kernel // 2): under
    a mix mask each image is convolved on its own (:func:`group_conv`).
    Twins' are kernel = stride (``pad_corner``: zeros at the bottom and
    right up to a multiple of the stride, mmseg's ``padding='corner'``),
    which never cross a 32-px square: no groups needed. (Swin's embedding
    keeps the official MixMIM names, ``proj``, in its own module.)

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels C.
        kernel_size (int): Convolution kernel.
        stride (int): Convolution stride.
        padding (int): Zero padding on every side. Defaults to 0.
        eps (float): LayerNorm epsilon (mmdet's PVTv2 1e-6, mmseg's Twins
            1e-5).
        pad_corner (bool): Pad bottom and right to a multiple of the
            stride first. Defaults to False.
    """

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int,
                 stride: int, padding: int = 0, eps: float = 1e-5,
                 pad_corner: bool = False) -> None:
        super().__init__()
        self.pad_corner = pad_corner
        self.projection = nn.Conv2d(in_channels, embed_dims, kernel_size,
                                    stride, padding)
        self.norm = nn.LayerNorm(embed_dims, eps=eps)

    def forward(self, x: Tensor, in_groups: Optional[Tensor] = None,
                out_groups: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, C_in, H_in, W_in) -> tokens (B, L, C) and (H, W); groups as
        :func:`group_conv` (None: one image)."""
        if self.pad_corner:
            # ints: under tracing, sizes are tensors (constants here)
            h, w = map(int, x.shape[2:])
            hp, wp = padded_size((h, w), self.projection.stride)
            x = F.pad(x, (0, wp - w, 0, hp - h))
        x = group_conv(self.projection, x, in_groups, out_groups)
        hw = (int(x.shape[2]), int(x.shape[3]))
        return self.norm(nchw_to_nlc(x)), hw


__all__ = [
    'group_conv', 'same_image_key_mask', 'SpatialReductionAttention',
    'PatchEmbed', 'nlc_to_nchw', 'nchw_to_nlc'
]
