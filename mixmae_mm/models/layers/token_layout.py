# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Token layouts: the order in which a stage keeps its tokens so that every
block attends without partitioning, padding or masking.

A stage's H x W tokens are cut into *cells*, the units of attention: a
window, or, when image groups are given (which image of a mixed pair each
token comes from, :meth:`MixMAESwin.plan_layouts`), the part of a window
that holds one image. Tokens attend exactly to the other tokens of their
cell: this is where masked self-attention happens. Windows that overhang
the map simply have fewer tokens, so padding never exists: this equals
window attention on a zero-padded map whose real tokens ignore the padding
(the oracle of the tests, ``tests/reference/padded_window.py``).

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

Where layouts are built: cell sizes and segment boundaries are Python
numbers read from the groups, which on an accelerator would make the host
wait for the device. Layouts are therefore planned on the host
(:func:`plan_token_layout`, CPU tensors only) and then moved to the device
in one non-blocking copy (:func:`layouts_to`). ``MixMAESwin.plan_layouts``
does this once per batch for all stages of a mix mask; layouts without
groups depend on shapes only and are cached (:func:`plain_layout`). One
case needs no reading: a map that is one window, whose two cells have the
sizes a known partner count gives (:func:`split_window_layout`, built on
the device by the static-shape path).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...utils.torch_compat import untraced
from ..utils.shape_cache import ShapeCache


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
        return x.index_select(1, self.perm)

    def to_map(self, x: Tensor) -> Tensor:
        """Layout tokens (B, L, C) -> map (B, H, W, C)."""
        if self.perm is not None:
            x = x.index_select(1, self.inverse)
        return x.unflatten(1, self.hw)  # (B, H, W, C)


class HostLayout(NamedTuple):
    """A :class:`TokenLayout` planned on the host, before
    :func:`layouts_to` moves it to a device.

    Attributes:
        hw, perm, inverse: As in :class:`TokenLayout` (CPU tensors).
        segments (tuple[Segment]): As in :class:`TokenLayout`, without
            masks.
        group_ids (tuple[Tensor | None]): Per segment, long (M, K, n): the
            group of every token of its cells where the segment needs a mask
            (per-sample groups), else None. The masks are expanded from them
            on the device: an n times smaller copy.
    """
    hw: Tuple[int, int]
    perm: Optional[Tensor]
    inverse: Optional[Tensor]
    segments: Tuple[Segment, ...]
    group_ids: Tuple[Optional[Tensor], ...]


def _rel_index(ys: Tensor, xs: Tensor, table_window: Tuple[int, int]):
    """Bias-table index of every token pair of each cell.

    Args:
        ys (Tensor): Row of each token inside its window, (K, n).
        xs (Tensor): Column of each token inside its window, (K, n).
        table_window (tuple[int, int]): Window ``(Th, Tw)`` of the table.

    Returns:
        Tensor: Long (K, n, n), or (1, n, n) if all cells agree.
    """
    if ys.shape[0] > 1 and bool((ys == ys[:1]).all()) \
            and bool((xs == xs[:1]).all()):
        ys, xs = ys[:1], xs[:1]  # all cells alike: one shared (1, n, n)
    return _pair_index(ys, xs, table_window)


def _pair_index(ys: Tensor, xs: Tensor, table_window: Tuple[int, int]):
    """Bias-table index (K, n, n) of every token pair of each cell, from
    rows and columns (K, n) inside the window; no value is read."""
    th, tw = table_window
    dy = ys[:, :, None] - ys[:, None, :] + th - 1  # (K, n, n)
    dx = xs[:, :, None] - xs[:, None, :] + tw - 1  # (K, n, n)
    return dy * (2 * tw - 1) + dx  # same layout as relative_position_index


def plan_token_layout(hw: Tuple[int, int],
                      window: Tuple[int, int],
                      table_window: Tuple[int, int],
                      groups: Optional[Tensor] = None) -> HostLayout:
    """Plan the token layout of a stage on the host.

    Args:
        hw (tuple[int, int]): Map size (H, W).
        window (tuple[int, int]): Window ``(Wh, Ww)``; windows overhanging
            the map are cut (no padding).
        table_window (tuple[int, int]): Window of the relative position
            bias table (``WindowAttention.window_size``).
        groups (Tensor, optional): Image groups (M, H, W) on the CPU, M in
            {1, B}, any integers: tokens attend only within their group.
            Groups shared by the batch (M = 1) cut windows into per-group
            cells; per-sample groups keep whole windows and mask them.

    Returns:
        HostLayout: The layout on the CPU; segments ordered by decreasing
        cell size.
    """
    if groups is not None and groups.device.type != 'cpu':
        # reading a device tensor here would stall the device at every call
        raise ValueError(f'layouts are planned on the host: pass CPU '
                         f'groups, got {groups.device}')
    h, w = hw
    wh, ww = window
    host = torch.device('cpu')
    pos = torch.arange(h * w, device=host)  # (L,) row-major position
    ys, xs = pos // w, pos % w  # (L,)
    cell = (ys // wh) * -(-w // ww) + xs // ww  # (L,) window id
    split = groups is not None and groups.shape[0] == 1
    if split:
        g = groups.reshape(-1).long()  # (L,)
        g = torch.unique(g, return_inverse=True)[1]  # ids 0..G-1
        cell = cell * (int(g.max()) + 1) + g  # (L,) (window, group) id
    sizes = torch.bincount(cell)  # (num_ids,) tokens per cell id
    ids = sizes.nonzero()[:, 0]  # (num_cells,) ids in use
    # cells by decreasing size, then by id: equal sizes become contiguous
    order = torch.argsort(-sizes[ids] * (ids.numel() + 1) +
                          torch.arange(ids.numel(), device=host))
    rank = torch.empty_like(sizes)
    rank[ids[order]] = torch.arange(ids.numel(), device=host)
    perm = torch.sort(rank[cell], stable=True)[1]  # (L,) map pos per slot
    inverse = torch.empty_like(perm)
    inverse[perm] = pos  # (L,)
    counts = sizes[ids[order]].tolist()  # cell sizes in layout order

    segments, group_ids, start, i = [], [], 0, 0
    wy, wx = ys % wh, xs % ww  # (L,) position inside the window
    while i < len(counts):
        n, k = counts[i], 1
        while i + k < len(counts) and counts[i + k] == n:
            k += 1
        tokens = perm[start:start + k * n].view(k, n)  # (K, n) map pos
        gids = None
        if groups is not None and not split:
            gids = groups.flatten(1)[:, tokens].long()  # (M, K, n)
        segments.append(
            Segment(start, k, n,
                    _rel_index(wy[tokens], wx[tokens], table_window)))
        group_ids.append(gids)
        start, i = start + k * n, i + k
    if torch.equal(perm, pos):
        perm = inverse = None
    return HostLayout((h, w), perm, inverse, tuple(segments), tuple(group_ids))


def split_window_layout(hw: Tuple[int, int], table_window: Tuple[int, int],
                        groups: Tensor, num_partner: int) -> TokenLayout:
    """The cells of a map that is one window, under groups shared by the
    batch of which ``num_partner`` tokens are the partner's: the layout
    :func:`plan_token_layout` plans for them, built with tensor operations
    on the groups' device (nothing is read back).

    Where the window covers the map its cells are the two images, and their
    sizes ``L - num_partner`` and ``num_partner`` do not depend on where
    the mask puts the squares (MixMAE draws a fixed number of squares per
    mask): static shapes, so compiled and GPU steps get the cells' half of
    the logits and no mask there (stages 3 and 4 of Swin-B at 224 px). The
    caller guarantees the count (see ``MixMAEEncoder.check_partner_count``):
    with another count a cell would hold tokens of both images.

    Args:
        hw (tuple[int, int]): Map size (H, W), also the window.
        table_window (tuple[int, int]): Window of the bias table.
        groups (Tensor): Image groups (1, H, W), bool or 0/1, True (1) for
            the partner's tokens.
        num_partner (int): Tokens in the partner group, in [0, H*W].

    Returns:
        TokenLayout: On the device of ``groups``.
    """
    h, w = hw
    sizes = [h * w - num_partner, num_partner]  # own, partner
    key = groups.reshape(-1).long()  # (L,) 1 = partner
    if sizes[1] > sizes[0]:  # larger cell first, as the planner orders
        key, sizes = 1 - key, sizes[::-1]
    perm = key.argsort(stable=True)  # (L,) first cell, then second
    pos = torch.arange(h * w, device=perm.device)
    inverse = torch.empty_like(perm).scatter_(0, perm, pos)  # (L,)
    ys, xs = perm // w, perm % w  # (L,) row/column in the window
    if sizes[0] == sizes[1]:  # equal cells: one segment of two
        n = sizes[0]
        segments = (Segment(0, 2, n,
                            _pair_index(
                                ys.view(2, n), xs.view(2, n),
                                table_window)), )
    else:
        segments = tuple(
            Segment(start, 1, n,
                    _pair_index(ys[None, start:start + n],
                                xs[None, start:start + n], table_window))
            for start, n in ((0, sizes[0]), (sizes[0], sizes[1])) if n)
    return TokenLayout((h, w), perm, inverse, segments)


def _host_tensors(layout: HostLayout) -> List[Tensor]:
    """The tensors of a host layout, in the order :func:`layouts_to`
    reads them back."""
    tensors = [t for t in (layout.perm, layout.inverse) if t is not None]
    for segment, gids in zip(layout.segments, layout.group_ids):
        tensors.append(segment.rel_index)
        if gids is not None:
            tensors.append(gids)
    return tensors


def _copy_to(tensors: List[Tensor], device: torch.device) -> List[Tensor]:
    """Long CPU tensors -> the same on ``device``: views of one buffer,
    filled by one copy that the host does not wait for."""
    if device.type == 'cpu' or not tensors:
        return tensors
    sizes = [t.numel() for t in tensors]
    # pinned: the copy is truly asynchronous (from pageable memory the
    # driver may stage it synchronously)
    flat = torch.empty(
        sum(sizes), dtype=torch.long, pin_memory=device.type == 'cuda')
    torch.cat([t.reshape(-1) for t in tensors], out=flat)
    flat = flat.to(device, non_blocking=True)
    return [part.view(t.shape) for part, t in zip(flat.split(sizes), tensors)]


def layouts_to(layouts: Sequence[HostLayout], device) -> List[TokenLayout]:
    """Move planned layouts to ``device`` with one non-blocking copy, and
    expand their masks there. No value is read back to the host.

    Args:
        layouts (Sequence[HostLayout]): Layouts from
            :func:`plan_token_layout`.
        device (torch.device | str): Where the stages run.

    Returns:
        list[TokenLayout]: The layouts on ``device``, same order.
    """
    device = torch.device(device)
    moved = iter(
        _copy_to([t for lay in layouts for t in _host_tensors(lay)], device))
    out = []
    for lay in layouts:
        perm = inverse = None
        if lay.perm is not None:
            perm, inverse = next(moved), next(moved)
        segments = []
        for segment, gids in zip(lay.segments, lay.group_ids):
            rel_index, mask = next(moved), None
            if gids is not None:
                g = next(moved)  # (M, K, n)
                mask = g[..., :, None] == g[..., None, :]  # (M, K, n, n)
            segments.append(segment._replace(rel_index=rel_index, mask=mask))
        out.append(TokenLayout(lay.hw, perm, inverse, tuple(segments)))
    return out


#: Plain layouts of every model in the process, the most recently used up
#: to a byte budget (one per map size: detection sees hundreds of sizes).
_PLAIN_LAYOUTS = ShapeCache(16 * 2**20, name='plain_layout')


# host planning, never traced: compiled forwards take dense windows, and
# torch 2.1's Dynamo, resuming after its graph breaks, would otherwise trace
# the planner's data-dependent ints
@torch.compiler.disable
def plain_layout(hw: Tuple[int, int], window: Tuple[int, int],
                 table_window: Tuple[int, int], device) -> TokenLayout:
    """The layout of plain window attention (no groups), cached per map
    size, window, table window and device (the most recent ones, up to the
    byte budget of ``_PLAIN_LAYOUTS``): after the first call for a shape it
    costs neither host work nor a copy.

    Args:
        hw (tuple[int, int]): Map size (H, W).
        window (tuple[int, int]): Window ``(Wh, Ww)``.
        table_window (tuple[int, int]): Window of the bias table.
        device (torch.device | str): Where the layout lives.

    Returns:
        TokenLayout: Shared between callers; not to be modified.
    """
    # ints: under tracing, map sizes are 0-dim tensors (keys by identity)
    key = (tuple(map(int, hw)), tuple(map(int, window)),
           tuple(map(int, table_window)), torch.device(device))
    layout = _PLAIN_LAYOUTS.get(key)
    if layout is None:
        # normal tensors even under inference_mode, so that a later training
        # forward may save them for backward; constants of a trace
        with torch.inference_mode(False), untraced():
            layout = layouts_to([plan_token_layout(*key[:3])], key[3])[0]
        _PLAIN_LAYOUTS.put(key, layout)
    return layout


__all__ = [
    'Segment', 'TokenLayout', 'HostLayout', 'plan_token_layout', 'layouts_to',
    'plain_layout', 'split_window_layout'
]
