# Copyright (c) OpenMMLab. All rights reserved.
"""Token layouts: the order in which a stage keeps its tokens so that every
block attends without partitioning, padding or masking.

A stage's H x W tokens are cut into *cells*: a window, or, when attention
groups are given (see :mod:`~mixmae_mm.models.layers.mixing` for the mask
convention), the part of a window that belongs to one group. Tokens attend
exactly to the other tokens of their cell. Windows that overhang the map
simply have fewer tokens, so padding never exists: this equals window
attention on a zero-padded map whose real tokens ignore the padding.

The layout reorders the tokens cell by cell once per stage; LayerNorm, the
MLP and the linear layers do not care about token order. Cells of equal size
are stored next to each other and form a *segment*, so a block runs one
batched attention per segment, e.g. one for a plain map whose windows divide
it, two for a pretraining stage whose window covers the map (the own and
the partner group of the mixed image). With one mask shared by the batch
(MixMAE's choice) masked attention therefore costs less than plain window
attention: about half the logits at a 0.5 mix ratio, and no mask arithmetic.

Per-sample groups (M = B) cannot share one token order; then cells are the
windows and each segment carries a bool mask (M, K, n, n).
"""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor


class Segment(NamedTuple):
    """``num_cells`` consecutive cells of ``size`` tokens each.

    Attributes:
        start (int): Layout position of the segment's first token.
        num_cells (int): Number of cells K.
        size (int): Tokens per cell n.
        rel_index (Tensor): Long (K, n, n), or (1, n, n) when all cells
            share it, index into the relative position bias table.
        mask (Tensor | None): Bool (M, K, n, n), True = may attend (only for
            per-sample groups); every row allows its diagonal.
    """
    start: int
    num_cells: int
    size: int
    rel_index: Tensor
    mask: Optional[Tensor] = None


class TokenLayout(NamedTuple):
    """Cell-by-cell token order of one stage.

    Attributes:
        hw (tuple[int, int]): The map size (H, W).
        perm (Tensor | None): Long (L,), the map position (row-major) of
            each layout token; None when the layout is the map order.
        inverse (Tensor | None): Long (L,), the layout position of each map
            token.
        segments (tuple[Segment]): Segments in layout order, covering all
            ``L = H*W`` tokens.
    """
    hw: Tuple[int, int]
    perm: Optional[Tensor]
    inverse: Optional[Tensor]
    segments: Tuple[Segment, ...]

    def to_tokens(self, x: Tensor) -> Tensor:
        """Map (B, H, W, C) -> layout tokens (B, L, C)."""
        x = x.flatten(1, 2)  # (B, L, C)
        if self.perm is None:
            return x
        return _Permute.apply(x, self.perm, self.inverse)

    def to_map(self, x: Tensor) -> Tensor:
        """Layout tokens (B, L, C) -> map (B, H, W, C)."""
        if self.perm is not None:
            x = _Permute.apply(x, self.inverse, self.perm)
        return x.unflatten(1, self.hw)  # (B, H, W, C)


class _Permute(torch.autograd.Function):
    """``x.index_select(1, perm)`` whose backward is the inverse gather
    (cheaper than the scatter-add of ``index_select``'s backward)."""

    @staticmethod
    def forward(ctx, x: Tensor, perm: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(1, perm)

    @staticmethod
    def backward(ctx, grad: Tensor):
        inverse, = ctx.saved_tensors
        return grad.index_select(1, inverse), None, None


def _rel_index(ys: Tensor, xs: Tensor, table_window: Tuple[int, int]):
    """Bias-table index of every token pair of each cell.

    Args:
        ys (Tensor): Row of each token inside its window, (K, n).
        xs (Tensor): Column of each token inside its window, (K, n).
        table_window (tuple[int, int]): Window ``(Th, Tw)`` of the table.

    Returns:
        Tensor: Long (K, n, n), or (1, n, n) if all cells agree.
    """
    th, tw = table_window
    if ys.shape[0] > 1 and bool((ys == ys[:1]).all()) and bool(
        (xs == xs[:1]).all()):
        ys, xs = ys[:1], xs[:1]  # all cells alike: one shared (1, n, n)
    dy = ys[:, :, None] - ys[:, None, :] + th - 1  # (K, n, n)
    dx = xs[:, :, None] - xs[:, None, :] + tw - 1  # (K, n, n)
    return dy * (2 * tw - 1) + dx  # same layout as relative_position_index


def token_layout(hw: Tuple[int, int],
                 window: Tuple[int, int],
                 table_window: Tuple[int, int],
                 groups: Optional[Tensor] = None,
                 device=None,
                 split_groups: bool = True) -> TokenLayout:
    """Build the token layout of a stage.

    Args:
        hw (tuple[int, int]): Map size (H, W).
        window (tuple[int, int]): Window ``(Wh, Ww)``; windows overhanging
            the map are cut (no padding).
        table_window (tuple[int, int]): Window of the relative position
            bias table (``WindowAttention.window_size``).
        groups (Tensor, optional): Integer attention groups (M, H, W),
            M in {1, B}: tokens attend only within their group.
        device (torch.device, optional): Where to build the layout when
            ``groups`` is None.
        split_groups (bool): With groups shared by the batch (M = 1), cut
            windows into per-group cells. False keeps whole windows and
            masks instead (as always for M = B). Defaults to True.

    Returns:
        TokenLayout: The layout; segments ordered by decreasing cell size.
    """
    h, w = hw
    wh, ww = window
    if groups is not None:
        device = groups.device
    pos = torch.arange(h * w, device=device)  # (L,) row-major position
    ys, xs = pos // w, pos % w  # (L,)
    cell = (ys // wh) * -(-w // ww) + xs // ww  # (L,) window id
    split = groups is not None and groups.shape[0] == 1 and split_groups
    if split:
        g = groups.reshape(-1).long()  # (L,)
        g = torch.unique(g, return_inverse=True)[1]  # ids 0..G-1
        cell = cell * (int(g.max()) + 1) + g  # (L,) (window, group) id
    sizes = torch.bincount(cell)  # (num_ids,) tokens per cell id
    ids = sizes.nonzero()[:, 0]  # (num_cells,) ids in use
    # cells by decreasing size, then by id: equal sizes become contiguous
    order = torch.argsort(-sizes[ids] * (ids.numel() + 1) +
                          torch.arange(ids.numel(), device=device))
    rank = torch.empty_like(sizes)
    rank[ids[order]] = torch.arange(ids.numel(), device=device)
    perm = torch.sort(rank[cell], stable=True)[1]  # (L,) map pos per slot
    inverse = torch.empty_like(perm)
    inverse[perm] = pos  # (L,)
    counts = sizes[ids[order]].tolist()  # cell sizes in layout order

    segments, start, i = [], 0, 0
    wy, wx = ys % wh, xs % ww  # (L,) position inside the window
    while i < len(counts):
        n, k = counts[i], 1
        while i + k < len(counts) and counts[i + k] == n:
            k += 1
        tokens = perm[start:start + k * n].view(k, n)  # (K, n) map pos
        mask = None
        if groups is not None and not split:
            g = groups.flatten(1)[:, tokens]  # (M, K, n)
            mask = g[..., :, None] == g[..., None, :]  # (M, K, n, n)
        segments.append(
            Segment(start, k, n,
                    _rel_index(wy[tokens], wx[tokens], table_window), mask))
        start, i = start + k * n, i + k
    if torch.equal(perm, pos):
        perm = inverse = None
    return TokenLayout((h, w), perm, inverse, tuple(segments))


__all__ = ['Segment', 'TokenLayout', 'token_layout']
