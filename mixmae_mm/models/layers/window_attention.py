# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Window multi-head self-attention with a relative position bias, run on
the cells of a token layout; the one attention of pretraining (masked),
classification and dense use."""
from typing import Tuple, Union

import torch
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from .cell_attention import cell_attention
from .dense_windows import DenseWindows
from .token_layout import Segment, TokenLayout


class WindowAttention(nn.Module):
    """Non-shifted window attention (Swin W-MSA as MixMIM uses it).

    Tokens arrive in the cell-by-cell order of a
    :class:`~mixmae_mm.models.layers.token_layout.TokenLayout`: a cell is a
    window, or with a mix mask the part of a window that holds one image,
    so attending within each cell *is* masked self-attention. The bias
    table is built for the nominal ``window_size``; cells of smaller
    windows (clamped to a small map) read its central part.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads nH.
        window_size (tuple[int, int]): Nominal window ``(Wh, Ww)``.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: Tuple[int, int],
                 qkv_bias: bool = True) -> None:
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
        self.proj = nn.Linear(embed_dims, embed_dims)
        trunc_normal_(self.relative_position_bias_table, std=.02)

    def _bias(self, segment: Segment) -> Tensor:
        """Logit bias of a segment's cells, (K or 1, nH, n, n), or with
        per-sample image groups (M, K, nH, n, n) with -inf across images."""
        index = segment.rel_index  # (K or 1, n, n)
        # index_select's backward is an index_add: on the CPU about 2x
        # cheaper than the index_put of ``table[index]``
        bias = self.relative_position_bias_table.t().index_select(
            1, index.flatten())  # (nH, K*n*n)
        bias = bias.view(-1, *index.shape).transpose(0, 1)  # (K, nH, n, n)
        if segment.mask is not None:
            # -inf is safe in every dtype: the diagonal is never masked
            bias = bias.masked_fill(~segment.mask[:, :, None],
                                    float('-inf'))  # (M, K, nH, n, n)
        return bias

    def _dense_bias(self, layout: DenseWindows) -> Tensor:
        """Logit bias of dense windows, (1, nH, N, N), or with image
        groups or padding (M, nW, nH, N, N) with -inf where not allowed."""
        index = layout.rel_index  # (N, N)
        bias = self.relative_position_bias_table.t().index_select(
            1, index.flatten()).view(1, -1, *index.shape)  # (1, nH, N, N)
        if layout.allowed is not None:
            # -inf is safe in every dtype: the diagonal is never masked
            bias = bias.masked_fill(~layout.allowed[:, :, None],
                                    float('-inf'))  # (M, nW, nH, N, N)
        return bias

    def forward(self, x: Tensor, layout: Union[TokenLayout,
                                               DenseWindows]) -> Tensor:
        """
        Args:
            x (Tensor): Tokens in layout order, shape (B, L, C).
            layout (TokenLayout | DenseWindows): The stage's cells, grouped
                into segments of equal-sized cells; or its dense windows
                (static shapes, L = nW*N, padding included).

        Returns:
            Tensor: Shape (B, L, C), same order.
        """
        qkv = self.qkv(x)  # (B, L, 3C)
        if isinstance(layout, DenseWindows):
            n = layout.window[0] * layout.window[1]
            x = cell_attention(qkv, self._dense_bias(layout).to(qkv.dtype),
                               layout.num_windows, n, self.num_heads,
                               self.scale)  # (B, nW*N, C)
            return self.proj(x)
        segments = layout.segments
        parts = (qkv, )
        if len(segments) > 1:
            # split/cat (not slicing) keep the backward to one copy each
            parts = qkv.split([s.num_cells * s.size for s in segments], 1)
        outs = [
            cell_attention(part, self._bias(s).to(qkv.dtype), s.num_cells,
                           s.size, self.num_heads, self.scale)
            for part, s in zip(parts, segments)
        ]  # each (B, K*n, C)
        x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return self.proj(x)
