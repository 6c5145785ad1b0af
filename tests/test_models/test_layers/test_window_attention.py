import pytest
import torch

from mixmae_mm.models.layers.cell_attention import cell_attention
from mixmae_mm.models.layers.mixing import window_attn_mask
from mixmae_mm.models.layers.token_layout import token_layout
from mixmae_mm.models.layers.window_attention import WindowAttention
from mixmae_mm.models.layers.window_ops import (pad_to_multiple,
                                                window_partition,
                                                window_reverse)


def cell_attention_reference(qkv, bias, num_cells, size, num_heads, scale):
    """The oracle: softmax attention of each cell, one cell at a time."""
    b, _, c3 = qkv.shape
    dh = c3 // 3 // num_heads
    outs = []
    for cell in qkv.split(size, dim=1):  # (B, n, 3C)
        q, k, v = cell.view(b, size, 3, num_heads, dh).permute(2, 0, 3, 1, 4)
        outs.append((q, k, v))  # each (B, nH, n, Dh)
    out = []
    for i, (q, k, v) in enumerate(outs):
        logits = q @ k.transpose(-1, -2) * scale  # (B, nH, n, n)
        if bias is not None:
            cell_bias = bias.expand(b, num_cells, *bias.shape[-3:])[:, i] \
                if bias.dim() == 5 else bias[i if bias.shape[0] > 1 else 0]
            logits = logits + cell_bias
        x = logits.softmax(-1) @ v  # (B, nH, n, Dh)
        out.append(x.transpose(1, 2).reshape(b, size, -1))
    return torch.cat(out, dim=1)  # (B, K*n, C)


def _attn(window=(4, 4), heads=2, dims=16):
    attn = WindowAttention(dims, heads, window)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    return attn.eval()


def test_rel_pos_bias_reads_the_table_by_offset():
    attn = _attn(window=(4, 4))
    table = attn.relative_position_bias_table  # (7*7, nH)
    for window in [(4, 4), (2, 3)]:
        bias = attn.rel_pos_bias(window)
        n = window[0] * window[1]
        assert bias.shape == (2, n, n)
        for i in range(n):
            for j in range(n):
                dy = i // window[1] - j // window[1]
                dx = i % window[1] - j % window[1]
                idx = (dy + 3) * 7 + dx + 3
                assert torch.equal(bias[:, i, j], table[idx])


def test_all_true_mask_equals_no_mask():
    attn = _attn()
    x = torch.randn(3, 2, 16, 16)
    mask = torch.ones(1, 2, 16, 16, dtype=torch.bool)
    torch.testing.assert_close(attn(x, (4, 4), mask), attn(x, (4, 4)))


def test_masked_attention_equals_attention_within_each_group():
    attn = _attn()
    x = torch.randn(2, 1, 16, 16)  # (B, nW, N, C)
    groups = (torch.rand(1, 4, 4) > 0.5).long()
    mask = window_attn_mask(groups, (4, 4))
    out = attn(x, (4, 4), mask)
    g = groups.flatten()
    bias = attn.rel_pos_bias((4, 4))
    qkv = attn.qkv(x).view(2, 16, 3, 2, 8).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nH, N, Dh)
    for grp in (0, 1):
        idx = (g == grp).nonzero().flatten()
        logits = q[:, :, idx] @ k[:, :, idx].transpose(-1, -2) * 8**-0.5
        logits = logits + bias[:, idx][:, :, idx]
        ref = (logits.softmax(-1) @ v[:, :, idx]).transpose(1, 2)
        ref = attn.proj(ref.reshape(2, len(idx), 16))
        torch.testing.assert_close(out[:, 0, idx], ref)


def test_masked_attention_is_finite_under_bf16_autocast():
    attn = _attn()
    x = torch.randn(2, 2, 16, 16)
    groups = (torch.rand(1, 4, 8) > 0.5).long()
    mask = window_attn_mask(groups, (4, 4))
    ref = attn(x, (4, 4), mask)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn(x, (4, 4), mask)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


def _cpu_has_half_matmul():
    try:
        torch.ones(2, 2, dtype=torch.half) @ torch.ones(2, 2, dtype=torch.half)
    except RuntimeError:  # torch 2.1: "addmm_impl_cpu_" not implemented
        return False
    return True


@pytest.mark.xfail(
    not _cpu_has_half_matmul(), raises=RuntimeError, strict=True,
    reason='this torch has no fp16 matrix products on the CPU (torch 2.1); '
    'fp16 runs on GPUs there (tools/analysis_tools/gpu_check.sh)')
def test_masked_attention_is_finite_in_fp16():
    attn = _attn().half()
    x = torch.randn(2, 2, 16, 16).half() * 30  # large logits
    groups = (torch.rand(1, 4, 8) > 0.5).long()
    out = attn(x, (4, 4), window_attn_mask(groups, (4, 4)))
    assert torch.isfinite(out).all()


def test_index_is_not_in_state_dict():
    keys = _attn().state_dict().keys()
    assert set(keys) == {
        'relative_position_bias_table', 'qkv.weight', 'qkv.bias',
        'proj.weight', 'proj.bias'
    }


# --- fast paths: cell attention on a token layout ---------------------------
def _grads(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(out, inputs, g.to(out.dtype))


@pytest.mark.parametrize('bias_shape', [(1, 2, 9, 9), (3, 2, 9, 9),
                                        (4, 3, 2, 9, 9), None])
def test_cell_attention_equals_reference(bias_shape):
    """Cell attention gives the values and gradients of attention computed
    cell by cell, for shared, per-cell, per-sample (masked) and no bias."""
    qkv = torch.randn(4, 3 * 9, 3 * 16, requires_grad=True)  # (B, K*n, 3C)
    bias = None
    if bias_shape is not None:
        bias = torch.randn(bias_shape, requires_grad=True)
    if bias_shape is not None and len(bias_shape) == 5:
        keep = torch.rand(bias_shape[:2] + (1, 9, 9)) > 0.3
        keep |= torch.eye(9, dtype=torch.bool)  # diagonal always allowed
        bias = bias.masked_fill(~keep, float('-inf'))
    inputs = [qkv] + ([bias] if bias is not None else [])
    args = (3, 9, 2, 8**-0.5)
    out = cell_attention(qkv, bias, *args)
    ref = cell_attention_reference(qkv, bias, *args)
    torch.testing.assert_close(out, ref)
    for a, b in zip(_grads(out, inputs), _grads(ref, inputs)):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the inference dispatch agrees too
        torch.testing.assert_close(cell_attention(qkv, bias, *args), ref)


def _layout_vs_padded_windows(attn, hw, window, groups, b=2):
    """Outputs (and input gradients) of forward_tokens on a token layout and
    of forward on zero-padded windows with window_attn_mask, both mapped
    back to the (B, H, W, C) map."""
    h, w = hw
    x = torch.randn(b, h, w, attn.embed_dims, requires_grad=True)
    layout = token_layout(hw, window, attn.window_size, groups)
    out = layout.to_map(attn.forward_tokens(layout.to_tokens(x), layout))
    mask_groups = groups if groups is not None else torch.zeros(
        1, h, w, dtype=torch.long)
    mask = window_attn_mask(mask_groups, window)  # padding never attended
    xp = pad_to_multiple(x, window)  # (B, Hp, Wp, C)
    hp, wp = xp.shape[1:3]
    ref = attn(window_partition(xp, window), window, mask)
    ref = window_reverse(ref, window, hp, wp)[:, :h, :w]  # (B, H, W, C)
    return (out, ref), (_grads(out, [x])[0], _grads(ref, [x])[0])


@pytest.mark.parametrize('hw,window', [((8, 8), (4, 4)), ((7, 10), (3, 4)),
                                       ((6, 5), (6, 5)), ((9, 9), (2, 3))])
@pytest.mark.parametrize('groups', ['none', 'shared', 'per_sample'])
def test_grouped_cells_equal_masked_windows(hw, window, groups):
    """Per-group cells (shared mask), masked windows (per-sample masks) and
    cut border windows equal masked attention over zero-padded windows, so
    nothing leaks between groups and padding is never attended."""
    attn = _attn(window=(6, 5), heads=2, dims=16)
    g = None
    if groups == 'shared':
        g = (torch.rand(1, *hw) > 0.5).long()
    elif groups == 'per_sample':
        g = (torch.rand(2, *hw) > 0.5).long()
    (out, ref), (grad,
                 grad_ref) = _layout_vs_padded_windows(attn, hw, window, g)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, grad_ref)


def test_split_and_masked_cells_agree():
    attn = _attn(window=(4, 4), heads=2, dims=16)
    x = torch.randn(3, 64, 16)  # (B, L, C), a map of 8x8
    groups = (torch.rand(1, 8, 8) > 0.5).long()
    outs = []
    for split in (True, False):
        layout = token_layout((8, 8), (4, 4), (4, 4),
                              groups,
                              split_groups=split)
        tokens = layout.to_tokens(x.view(3, 8, 8, 16))
        outs.append(layout.to_map(attn.forward_tokens(tokens, layout)))
    torch.testing.assert_close(outs[0], outs[1])


def test_cell_attention_under_bf16_autocast():
    attn = _attn()
    x = torch.randn(2, 8, 8, 16)
    groups = (torch.rand(1, 8, 8) > 0.5).long()
    layout = token_layout((8, 8), (4, 4), (4, 4), groups)
    tokens = layout.to_tokens(x).requires_grad_()
    ref = attn.forward_tokens(tokens, layout)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn.forward_tokens(tokens, layout)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)
    out.float().sum().backward()
    grad = attn.relative_position_bias_table.grad
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()


def test_sdpa_dispatch_equals_cell_attention(monkeypatch):
    """The SDPA branch (CPU inference in fp32; every call on GPUs) agrees
    with the explicit products, also for gradients (forced on the CPU, where
    torch runs it through its math kernel)."""
    import mixmae_mm.models.layers.cell_attention as ca
    qkv = torch.randn(2, 3 * 9, 3 * 16, requires_grad=True)
    for bias_shape in [(1, 2, 9, 9), None]:
        bias = None if bias_shape is None else torch.randn(
            bias_shape, requires_grad=True)
        inputs = [qkv] + ([bias] if bias is not None else [])
        args = (3, 9, 2, 8**-0.5)
        ref = ca.cell_attention(qkv, bias, *args)
        assert not ca._use_sdpa(qkv, bias)  # with gradients on the CPU
        monkeypatch.setattr(ca, '_use_sdpa', lambda qkv, bias: True)
        out = ca.cell_attention(qkv, bias, *args)
        monkeypatch.undo()
        torch.testing.assert_close(out, ref)
        for a, b in zip(_grads(out, inputs), _grads(ref, inputs)):
            torch.testing.assert_close(a, b)
    with torch.no_grad():
        assert ca._use_sdpa(qkv, None)
        assert not ca._use_sdpa(qkv, torch.zeros(3, 2, 9, 9))  # per cell
        assert not ca._use_sdpa(qkv.bfloat16(), None)
