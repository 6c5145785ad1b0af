"""Dense windows (the static-shape layout) against the padded-window oracle
(tests/reference/padded_window.py), and the automatic choice of path."""
import pytest
import torch

from mixmae_mm.models.layers import dense_windows as dw
from mixmae_mm.models.layers.window_attention import WindowAttention
from reference import padded_window as ref_pw


def _attn(window, heads=2, dims=8):
    attn = WindowAttention(dims, heads, window)
    with torch.no_grad():  # a non-trivial bias
        attn.relative_position_bias_table.normal_()
    return attn


def _groups(kind, b, hw):
    if kind == 'none':
        return None
    m = 1 if kind == 'shared' else b
    return (torch.rand(m, *hw) > 0.5).long()


@pytest.mark.parametrize('hw,window', [((8, 8), (4, 4)), ((7, 10), (3, 4)),
                                       ((5, 5), (5, 5))])
@pytest.mark.parametrize('groups', ['none', 'shared', 'per_sample'])
def test_dense_windows_equal_masked_padded_windows(hw, window, groups):
    attn = _attn(window)
    b = 3
    x = torch.randn(b, *hw, 8)
    g = _groups(groups, b, hw)
    layout = dw.dense_windows(hw, window, window, g)
    with torch.no_grad():
        out = layout.to_map(attn(layout.to_tokens(x), layout))
        ref_groups = torch.zeros(1, *hw, dtype=torch.long) if g is None \
            else g
        mask = ref_pw.window_attn_mask(ref_groups, window)
        y = ref_pw.pad_to_multiple(x, window)
        hp, wp = y.shape[1:3]
        ref = ref_pw.window_attention(attn, ref_pw.window_partition(y, window),
                                      window, mask)
        ref = ref_pw.window_reverse(ref, window, hp, wp)[:, :hw[0], :hw[1]]
    torch.testing.assert_close(out, ref)


def test_layout_shapes_depend_on_sizes_only():
    """Two masks with different group sizes give tensors of equal shapes;
    no mask and no padding give no mask at all."""
    a = dw.dense_windows((6, 6), (3, 3), (3, 3),
                         torch.tensor([[[1] + [0] * 5] * 6]))
    b = dw.dense_windows((6, 6), (3, 3), (3, 3), torch.ones(1, 6, 6))
    assert a.allowed.shape == b.allowed.shape == (1, 4, 9, 9)
    assert not torch.equal(a.allowed, b.allowed)
    assert dw.dense_windows((6, 6), (3, 3), (3, 3)).allowed is None
    padded = dw.dense_windows((5, 6), (3, 3), (3, 3))
    assert padded.allowed.shape == (1, 4, 9, 9)
    # a padding slot (row 5 of the padded map) is not attended by row 0
    assert not padded.allowed[0, 2, 0, 6] and padded.allowed[0, 2, 6, 6]


def test_round_trip_and_rel_index():
    layout = dw.dense_windows((5, 7), (2, 3), (4, 4))
    x = torch.randn(2, 5, 7, 3)
    tokens = layout.to_tokens(x)
    assert tokens.shape == (2, layout.num_windows * 6, 3) and \
        layout.num_windows == 9
    assert torch.equal(layout.to_map(tokens), x)
    # window (2, 3) reads the central part of a (4, 4) table: pair
    # (0, 0) -> (1, 2) has offset (-1, -2), entry (-1 + 3) * 7 + (-2 + 3)
    assert layout.rel_index[0, 5] == 15


def test_path_choice():
    x = torch.zeros(1)
    assert not dw.use_static_shapes(x)  # eager CPU: cells
    assert dw.use_static_shapes(x.to('meta'))  # another device: static
    with dw.force_attention_path('static'):
        assert dw.use_static_shapes(x)
        with dw.force_attention_path('cells'):
            assert not dw.use_static_shapes(x.to('meta'))
        assert dw.use_static_shapes(x)
    assert not dw.use_static_shapes(x)
    with pytest.raises(ValueError, match="'static' or 'cells'"):
        with dw.force_attention_path('dense'):
            pass

    def f(t):
        return t + 1 if dw.use_static_shapes(t) else t - 1

    # compiled: static, whatever the device
    compiled = torch.compile(f, backend='eager', fullgraph=True)
    assert compiled(torch.zeros(1)).item() == 1
    assert f(torch.zeros(1)).item() == -1
