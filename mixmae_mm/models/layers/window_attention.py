# Copyright (c) OpenMMLab. All rights reserved.
"""Window multi-head self-attention with a relative position bias; the one
attention used by pretraining (masked), classification and dense use."""
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from .cell_attention import cell_attention
from .rel_pos import relative_position_index
from .token_layout import Segment, TokenLayout


class WindowAttention(nn.Module):
    """Non-shifted window attention (Swin W-MSA as MixMIM uses it).

    The bias table is built for the nominal ``window_size``; smaller windows
    (clamped to a small feature map) read its central part. The relative
    index is derived, never stored in the state dict.

    Two entry points share one computation (:meth:`_attend`):
    :meth:`forward_tokens` for tokens kept in a
    :class:`~mixmae_mm.models.layers.token_layout.TokenLayout` (what the
    backbone uses: attention per cell, no masking), and :meth:`forward` for
    windows of a padded map with an optional bool mask.

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

    def _window_index(self, window: Tuple[int, int]) -> Tensor:
        """Cached bias-table index of a full window, (N, N)."""
        device = self.relative_position_bias_table.device
        key = (tuple(window), device)
        if key not in self._index_cache:
            # a normal tensor even under inference_mode, so that a later
            # training forward may save it for backward
            with torch.inference_mode(False):
                self._index_cache[key] = relative_position_index(
                    window, self.window_size, device=device)
        return self._index_cache[key]

    def rel_pos_bias(self, window: Tuple[int, int]) -> Tensor:
        """Bias of every token pair of a window, shape (nH, N, N)."""
        index = self._window_index(window)  # (N, N)
        return self._bias(index[None])[0]  # (nH, N, N)

    def _bias(self, index: Tensor) -> Tensor:
        """Gather the table: index (K, n, n) -> bias (K, nH, n, n)."""
        # index_select's backward is an index_add: on the CPU about 2x
        # cheaper than the index_put of ``table[index]`` (3x: embedding's)
        bias = self.relative_position_bias_table.t().index_select(
            1, index.flatten())  # (nH, K*n*n)
        return bias.view(-1, *index.shape).transpose(0, 1)  # (K, nH, n, n)

    def _attend(self, qkv: Tensor, segment: Segment) -> Tensor:
        """Attention within each cell of one segment.

        Args:
            qkv (Tensor): The segment's qkv, shape (B, K*n, 3C).
            segment (Segment): K cells of n tokens, their table index and
                optional mask.

        Returns:
            Tensor: Shape (B, K*n, C), before the output projection.
        """
        bias = self._bias(segment.rel_index)  # (K or 1, nH, n, n)
        if segment.mask is not None:
            # -inf is safe in every dtype: the diagonal is never masked.
            bias = bias.masked_fill(~segment.mask[:, :, None],
                                    float('-inf'))  # (M, K, nH, n, n)
        return cell_attention(qkv, bias.to(qkv.dtype), segment.num_cells,
                              segment.size, self.num_heads, self.scale,
                              self.attn_drop)  # (B, K*n, C)

    def forward_tokens(self, x: Tensor, layout: TokenLayout) -> Tensor:
        """
        Args:
            x (Tensor): Tokens in layout order, shape (B, L, C).
            layout (TokenLayout): Cells and segments of the stage.

        Returns:
            Tensor: Shape (B, L, C), same order.
        """
        qkv = self.qkv(x)  # (B, L, 3C)
        segments = layout.segments
        if len(segments) == 1:
            x = self._attend(qkv, segments[0])  # (B, L, C)
        else:
            # split/cat (not slicing) keep the backward to one copy each
            parts = qkv.split([s.num_cells * s.size for s in segments], 1)
            x = torch.cat(
                [self._attend(p, s) for p, s in zip(parts, segments)],
                dim=1)  # (B, L, C)
        return self.proj_drop(self.proj(x))

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
        segment = Segment(0, nw, n,
                          self._window_index(window)[None], attn_mask)
        qkv = self.qkv(x).view(b, nw * n, 3 * c)  # (B, nW*N, 3C)
        x = self._attend(qkv, segment).view(b, nw, n, c)  # (B, nW, N, C)
        return self.proj_drop(self.proj(x))
