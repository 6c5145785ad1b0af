import pytest
import torch

from mixmae_mm.models.layers.mixing import sample_mix_mask, upsample_mask
from mixmae_mm.models.layers.rel_pos import relative_position_index
from mixmae_mm.models.layers.token_layout import (layouts_to,
                                                  plan_token_layout,
                                                  split_window_layout)


def token_layout(hw, window, table_window, groups=None):
    return layouts_to([plan_token_layout(hw, window, table_window, groups)],
                      'cpu')[0]


def _cells(layout):
    """Map positions of every cell, as a list of (segment, cell) tensors."""
    perm = layout.perm
    if perm is None:
        perm = torch.arange(layout.hw[0] * layout.hw[1])
    for seg in layout.segments:
        tokens = perm[seg.start:seg.start + seg.num_cells * seg.size]
        yield from ((seg, c) for c in tokens.view(seg.num_cells, seg.size))


@pytest.mark.parametrize('hw,window', [((8, 8), (4, 4)), ((7, 10), (3, 4)),
                                       ((5, 5), (5, 5)), ((6, 9), (4, 2))])
@pytest.mark.parametrize('with_groups', [False, True])
def test_cells_partition_windows_and_groups(hw, window, with_groups):
    h, w = hw
    groups = (torch.rand(1, h, w) > 0.5).long() if with_groups else None
    layout = token_layout(hw, window, (5, 5), groups)
    seen = torch.zeros(h * w, dtype=torch.long)
    sizes = [s.size for s in layout.segments]
    assert sizes == sorted(sizes, reverse=True)
    assert sum(s.num_cells * s.size for s in layout.segments) == h * w
    for _, cell in _cells(layout):
        seen[cell] += 1
        ys, xs = cell // w, cell % w
        # one window, one group, row-major order inside the window
        assert (ys // window[0]).unique().numel() == 1
        assert (xs // window[1]).unique().numel() == 1
        if groups is not None:
            assert groups.flatten()[cell].unique().numel() == 1
        assert torch.equal(cell, cell.sort()[0])
    assert (seen == 1).all()
    # every window is whole (no groups) or split into its groups
    n_windows = -(-h // window[0]) * -(-w // window[1])
    n_cells = sum(s.num_cells for s in layout.segments)
    assert n_cells == n_windows if groups is None else n_cells >= n_windows


def test_rel_index_matches_window_index():
    """Cells read the bias table at their tokens' window offsets; full
    windows share one (1, N, N) index equal to relative_position_index."""
    layout = token_layout((7, 10), (3, 4), (4, 5))
    full = layout.segments[0]
    assert full.size == 12 and full.rel_index.shape == (1, 12, 12)
    assert torch.equal(full.rel_index[0],
                       relative_position_index((3, 4), (4, 5)))
    ref = relative_position_index((3, 4), (4, 5))  # (12, 12)
    groups = (torch.rand(1, 7, 10) > 0.5).long()
    grouped = token_layout((7, 10), (3, 4), (4, 5), groups)
    for seg in grouped.segments:
        cells = grouped.perm[seg.start:seg.start +
                             seg.num_cells * seg.size].view(
                                 seg.num_cells, seg.size)
        local = (cells // 10 % 3) * 4 + cells % 10 % 4  # (K, n) in window
        expect = ref[local[:, :, None], local[:, None, :]]  # (K, n, n)
        assert torch.equal(seg.rel_index.expand_as(expect), expect)


def test_round_trip_and_identity():
    x = torch.randn(2, 7, 10, 3, requires_grad=True)
    groups = (torch.rand(1, 7, 10) > 0.5).long()
    layout = token_layout((7, 10), (3, 4), (3, 4), groups)
    tokens = layout.to_tokens(x)  # (B, L, C)
    assert torch.equal(tokens, x.flatten(1, 2)[:, layout.perm])
    assert torch.equal(layout.to_map(tokens), x)
    g = torch.randn(2, 70, 3)
    tokens.backward(g)
    assert torch.equal(x.grad.flatten(1, 2)[:, layout.perm], g)
    # one window over the whole map, no groups: tokens keep map order
    assert token_layout((4, 6), (4, 6), (7, 7)).perm is None


def test_per_sample_groups_give_masks():
    mask = sample_mix_mask(4, (2, 2), 0.5, per_pair=True)  # (4, 2, 2)
    groups = upsample_mask(mask, 4).long()  # (4, 8, 8)
    layout = token_layout((8, 8), (4, 4), (4, 4), groups)
    assert len(layout.segments) == 1
    seg = layout.segments[0]
    assert seg.mask.shape == (4, 4, 16, 16)
    assert seg.mask.diagonal(dim1=-2, dim2=-1).all()
    # a shared mask is split into cells instead
    shared = token_layout((8, 8), (4, 4), (4, 4), groups[:1])
    assert all(s.mask is None for s in shared.segments)


@pytest.mark.parametrize('grid,scale,ratio', [((7, 7), 2, 0.5),
                                              ((7, 7), 1, 0.5),
                                              ((2, 2), 2, 0.5),
                                              ((3, 2), 1, 0.75),
                                              ((2, 3), 2, 0.2)])
def test_split_window_layout_is_the_host_plan(grid, scale, ratio):
    """Built on the device from the count alone, it equals the host plan
    of the same groups (ordering, perm, cell sizes, bias index), whichever
    group is larger or when both are equal (one segment of two cells)."""
    for _ in range(5):
        mask = sample_mix_mask(1, grid, ratio)
        groups = upsample_mask(mask, scale)  # (1, H, W) bool
        hw = tuple(groups.shape[1:])
        num_partner = int(mask.sum()) * scale * scale
        built = split_window_layout(hw, (8, 8), groups, num_partner)
        plan = token_layout(hw, hw, (8, 8), groups.long())
        # the plan has no perm where its order is the map's
        ident = torch.arange(hw[0] * hw[1])
        assert built.hw == plan.hw
        assert torch.equal(built.perm, _or(plan.perm, ident))
        assert torch.equal(built.inverse, _or(plan.inverse, ident))
        assert [s[:3] for s in built.segments] == \
            [s[:3] for s in plan.segments]
        for b, p in zip(built.segments, plan.segments):
            assert torch.equal(b.rel_index, p.rel_index) and b.mask is None


def _or(t, default):
    return default if t is None else t
