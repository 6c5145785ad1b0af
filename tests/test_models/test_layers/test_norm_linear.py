import pytest
import torch
from torch import nn

from mixmae_mm.models.layers.norm_linear import norm_linear, norm_mlp
from mixmae_mm.models.layers.transformer import Mlp


def _run(fused, autocast, x0, norm, lin, mlp):
    for m in (norm, lin, mlp):
        m.zero_grad()
    x = x0.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        if fused:
            a, b = norm_linear(x, norm, lin), norm_mlp(x, norm, mlp)
        else:
            a, b = lin(norm(x)), mlp(norm(x))
    (a.float().sum() + (b.float()**2).sum()).backward()
    grads = [p.grad for m in (norm, lin, mlp) for p in m.parameters()]
    return [a, b, x.grad] + grads


@pytest.mark.parametrize('autocast', [False, True])
def test_fused_norm_linear_and_mlp_equal_plain(autocast):
    """Same outputs and gradients (bitwise: same kernels) as the plain
    modules, in fp32 and under CPU bf16 autocast; gradients keep the
    parameters' dtype."""
    torch.manual_seed(0)
    norm, lin, mlp = nn.LayerNorm(32), nn.Linear(32, 96), Mlp(32, 128)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x0 = torch.randn(2, 10, 32)
    fused = _run(True, autocast, x0, norm, lin, mlp)
    plain = _run(False, autocast, x0, norm, lin, mlp)
    for a, b in zip(fused, plain):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(g.dtype == torch.float32 for g in fused[2:])


def test_fused_mlp_keeps_less_for_backward():
    mlp, norm = Mlp(64, 256), nn.LayerNorm(64)
    x = torch.randn(4, 50, 64, requires_grad=True)
    params = {
        p.untyped_storage().data_ptr()
        for m in (mlp, norm)
        for p in m.parameters()
    }
    sizes = {}
    for name, fn in (('plain', lambda: mlp(norm(x))),
                     ('fused', lambda: norm_mlp(x, norm, mlp))):
        saved = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params:  # activations only
                saved[ptr] = t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        sizes[name] = sum(saved.values())
    # plain keeps x, norm(x), fc1 out, GELU out: 1 + 1 + 4 + 4 C per token,
    # fused keeps x and fc1 out: 1 + 4 C; both keep mean and rstd (2)
    assert sizes['plain'] == 4 * 50 * (64 * 10 + 2)
    assert sizes['fused'] == 4 * 50 * (64 * 5 + 2)


def test_unfusable_modules_run_plainly():
    mlp = Mlp(16, 32, drop=0.5).train()
    norm = nn.LayerNorm(16, elementwise_affine=False)
    x = torch.randn(2, 3, 16)
    torch.manual_seed(0)
    a = norm_mlp(x, nn.LayerNorm(16), mlp)
    torch.manual_seed(0)
    b = mlp(nn.LayerNorm(16)(x))
    torch.testing.assert_close(a, b)
    lin = nn.Linear(16, 8)
    torch.testing.assert_close(norm_linear(x, norm, lin), lin(norm(x)))
