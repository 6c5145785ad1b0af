import torch

from mixmae_mm.models.layers.mixing import window_attn_mask
from mixmae_mm.models.layers.window_attention import WindowAttention


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
