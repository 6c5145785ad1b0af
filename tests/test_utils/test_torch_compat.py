"""The version helpers answer as the current torch's own API does, on every
supported torch (the suite runs on 2.1.2 and 2.14.1)."""
import torch

from mixmae_mm.utils.torch_compat import (autocast_dtype, custom_bwd,
                                          custom_fwd, is_autocast_enabled)


def test_autocast_state_per_device():
    assert not is_autocast_enabled('cpu')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert is_autocast_enabled('cpu')
        assert autocast_dtype('cpu') == torch.bfloat16
        # the CPU context says nothing about CUDA
        assert not is_autocast_enabled('cuda')
    assert not is_autocast_enabled('cpu')


class _Square(torch.autograd.Function):

    @staticmethod
    @custom_fwd
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @custom_bwd
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return 2 * x * grad


def test_custom_fwd_bwd_decorate_an_autograd_function():
    x = torch.randn(5, requires_grad=True)
    _Square.apply(x).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())
    # under CPU autocast too (the decorators only track CUDA's state)
    x.grad = None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = _Square.apply(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())
