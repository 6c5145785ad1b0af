"""WindowAttention on token layouts and the cell attention it runs, against
the oracles in tests/reference/padded_window.py and direct formulas."""
import pytest
import torch

from mixmae_mm.models.layers.cell_attention import cell_attention
from mixmae_mm.models.layers.rel_pos import relative_position_index
from mixmae_mm.models.layers.token_layout import (layouts_to,
                                                  plan_token_layout)
from mixmae_mm.models.layers.window_attention import WindowAttention
from reference import padded_window as ref_pw


def _layout(hw, window, table_window, groups=None):
    return layouts_to([plan_token_layout(hw, window, table_window, groups)],
                      'cpu')[0]


def _attn(window=(4, 4), heads=2, dims=16):
    attn = WindowAttention(dims, heads, window)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    return attn.eval()


def _grads(out, inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(out, inputs, g.to(out.dtype))


def test_bias_reads_the_table_by_offset():
    attn = _attn(window=(4, 4))
    table = attn.relative_position_bias_table  # (7*7, nH)
    for window in [(4, 4), (2, 3)]:
        layout = _layout(window, window, (4, 4))  # one whole window
        bias = attn._bias(layout.segments[0])[0]  # (nH, n, n)
        n = window[0] * window[1]
        assert bias.shape == (2, n, n)
        for i in range(n):
            for j in range(n):
                dy = i // window[1] - j // window[1]
                dx = i % window[1] - j % window[1]
                assert torch.equal(bias[:, i, j], table[(dy + 3) * 7 + dx + 3])


def test_one_group_per_sample_equals_no_groups():
    attn = _attn()
    x = torch.randn(3, 64, 16)  # (B, L, C), an 8x8 map
    masked = _layout((8, 8), (4, 4), (4, 4), torch.zeros(3, 8, 8).long())
    assert masked.segments[0].mask is not None  # the masked path runs
    torch.testing.assert_close(attn(x, masked),
                               attn(x, _layout((8, 8), (4, 4), (4, 4))))


def test_masked_attention_equals_direct_masked_softmax():
    """Tokens of one window attend only within their image group: the
    layout output equals softmax attention computed group by group."""
    attn = _attn()
    x = torch.randn(2, 4, 4, 16)  # one 4x4 window
    groups = (torch.rand(1, 4, 4) > 0.5).long()
    layout = _layout((4, 4), (4, 4), (4, 4), groups)
    out = layout.to_map(attn(layout.to_tokens(x), layout)).flatten(1, 2)
    g = groups.flatten()
    index = relative_position_index((4, 4), (4, 4))
    bias = attn.relative_position_bias_table[index].permute(2, 0, 1)
    qkv = attn.qkv(x.flatten(1, 2)).view(2, 16, 3, 2, 8)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, nH, N, Dh)
    for grp in (0, 1):
        idx = (g == grp).nonzero().flatten()
        logits = q[:, :, idx] @ k[:, :, idx].transpose(-1, -2) * 8**-0.5
        logits = logits + bias[:, idx][:, :, idx]
        ref = (logits.softmax(-1) @ v[:, :, idx]).transpose(1, 2)
        ref = attn.proj(ref.reshape(2, len(idx), 16))
        torch.testing.assert_close(out[:, idx], ref)


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
    ref = ref_pw.cell_attention(qkv, bias, *args)
    torch.testing.assert_close(out, ref)
    for a, b in zip(_grads(out, inputs), _grads(ref, inputs)):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the inference dispatch agrees too
        torch.testing.assert_close(cell_attention(qkv, bias, *args), ref)


def test_oracle_mask_keeps_groups_and_padding_apart():
    """The oracle's own mask: same group only, padding never attended."""
    groups = torch.tensor([[[0, 1, 1], [0, 0, 1]]])  # (1, 2, 3)
    allowed = ref_pw.window_attn_mask(groups, (2, 2))  # padded to (2, 4)
    assert allowed.shape == (1, 2, 4, 4)
    assert allowed.diagonal(dim1=-2, dim2=-1).all()
    # window 0 holds tokens [(0,0)=0, (0,1)=1, (1,0)=0, (1,1)=0]
    expected = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0], [1, 0, 1, 1],
                             [1, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(allowed[0, 0], expected)
    # window 1 holds [1, pad, 1, pad]: real tokens never see padding
    assert not allowed[0, 1, 0, 1] and not allowed[0, 1, 1, 0]
    assert allowed[0, 1, 0, 2] and ref_pw.PAD_GROUP == 2


@pytest.mark.parametrize('hw,window', [((8, 8), (4, 4)), ((7, 10), (3, 4)),
                                       ((6, 5), (6, 5)), ((9, 9), (2, 3))])
@pytest.mark.parametrize('groups', ['none', 'shared', 'per_sample'])
def test_layout_equals_masked_padded_windows(hw, window, groups):
    """Per-group cells (shared mask), masked windows (per-sample masks) and
    cut border windows equal masked attention over zero-padded windows
    (the oracle), values and input gradients: nothing crosses between
    groups and padding is never attended."""
    attn = _attn(window=(6, 5), heads=2, dims=16)
    h, w = hw
    g = None
    if groups == 'shared':
        g = (torch.rand(1, *hw) > 0.5).long()
    elif groups == 'per_sample':
        g = (torch.rand(2, *hw) > 0.5).long()
    x = torch.randn(2, h, w, 16, requires_grad=True)
    layout = _layout(hw, window, attn.window_size, g)
    out = layout.to_map(attn(layout.to_tokens(x), layout))
    mask = ref_pw.window_attn_mask(
        g if g is not None else torch.zeros(1, h, w).long(), window)
    xp = ref_pw.pad_to_multiple(x, window)  # (B, Hp, Wp, C)
    ref = ref_pw.window_attention(attn, ref_pw.window_partition(xp, window),
                                  window, mask)
    ref = ref_pw.window_reverse(ref, window, *xp.shape[1:3])[:, :h, :w]
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(_grads(out, [x])[0], _grads(ref, [x])[0])


def test_shared_and_per_sample_groups_agree():
    """Split cells (one mask for the batch) and masked whole windows (the
    same mask repeated per sample) are two routes to one result."""
    attn = _attn(window=(4, 4), heads=2, dims=16)
    x = torch.randn(3, 8, 8, 16)
    groups = (torch.rand(1, 8, 8) > 0.5).long()
    outs = []
    for g in (groups, groups.expand(3, 8, 8)):
        layout = _layout((8, 8), (4, 4), (4, 4), g)
        outs.append(layout.to_map(attn(layout.to_tokens(x), layout)))
    torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize('per_sample', [False, True])
def test_masked_attention_under_bf16_autocast(per_sample):
    attn = _attn()
    x = torch.randn(2, 8, 8, 16)
    groups = (torch.rand(2 if per_sample else 1, 8, 8) > 0.5).long()
    layout = _layout((8, 8), (4, 4), (4, 4), groups)
    tokens = layout.to_tokens(x).requires_grad_()
    ref = attn(tokens, layout)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn(tokens, layout)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)
    out.float().sum().backward()
    grad = attn.relative_position_bias_table.grad
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()


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
    x = torch.randn(2, 64, 16).half() * 30  # large logits
    groups = (torch.rand(2, 8, 8) > 0.5).long()  # masked (-inf) path
    out = attn(x, _layout((8, 8), (4, 4), (4, 4), groups))
    assert torch.isfinite(out).all()


def test_index_is_not_in_state_dict():
    keys = _attn().state_dict().keys()
    assert set(keys) == {
        'relative_position_bias_table', 'qkv.weight', 'qkv.bias',
        'proj.weight', 'proj.bias'
    }


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
