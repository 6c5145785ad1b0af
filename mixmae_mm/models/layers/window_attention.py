# Copyright (c) OpenMMLab. All rights reserved.
"""Window multi-head self-attention with a relative position bias; the one
attention used by pretraining (masked), classification and dense use."""
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from .rel_pos import relative_position_index


class WindowAttention(nn.Module):
    """Non-shifted window attention (Swin W-MSA as MixMIM uses it).

    The bias table is built for the nominal ``window_size``; smaller windows
    (clamped to a small feature map) read its central part. The relative
    index is derived, never stored in the state dict.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads nH.
        window_size (tuple[int, int]): Nominal window ``(Wh, Ww)``.
        qkv_bias (bool): Bias in the fused qkv projection. Defaults to True.
        attn_drop (float): Dropout on attention weights. Defaults to 0.
        proj_drop (float): Dropout after the output projection.
            Defaults to 0.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: Tuple[int, int],
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = tuple(window_size)
        self.scale = (embed_dims // num_heads)**-0.5
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self._index_cache = {}
        trunc_normal_(self.relative_position_bias_table, std=.02)

    def rel_pos_bias(self, window: Tuple[int, int]) -> Tensor:
        """Bias of every token pair of a window, shape (nH, N, N)."""
        device = self.relative_position_bias_table.device
        key = (tuple(window), device)
        if key not in self._index_cache:
            self._index_cache[key] = relative_position_index(
                window, self.window_size, device=device).flatten()
        index = self._index_cache[key]
        n = window[0] * window[1]
        bias = self.relative_position_bias_table[index]  # (N*N, nH)
        return bias.view(n, n, -1).permute(2, 0, 1)  # (nH, N, N)

    def forward(self,
                x: Tensor,
                window: Tuple[int, int],
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            x (Tensor): Windowed tokens, shape (B, nW, N, C).
            window (tuple[int, int]): The window ``(Wh, Ww)`` of ``x``.
            attn_mask (Tensor, optional): Bool (M, nW, N, N), M in {1, B},
                True = may attend; every row must allow its diagonal.

        Returns:
            Tensor: Shape (B, nW, N, C).
        """
        b, nw, n, c = x.shape
        qkv = self.qkv(x).view(b, nw, n, 3, self.num_heads, -1)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # (B, nW, nH, N, Dh)
        bias = self.rel_pos_bias(window)  # (nH, N, N)
        if attn_mask is not None:
            # -inf is safe in every dtype: the diagonal is never masked.
            bias = bias.masked_fill(~attn_mask[:, :, None],
                                    float('-inf'))  # (M, nW, nH, N, N)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, nW, nH, N, N)
        attn = (attn + bias.to(attn.dtype)).softmax(dim=-1)
        x = self.attn_drop(attn) @ v  # (B, nW, nH, N, Dh)
        x = x.transpose(2, 3).reshape(b, nw, n, c)  # (B, nW, N, C)
        return self.proj_drop(self.proj(x))
