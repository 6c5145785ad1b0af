# Copyright (c) OpenMMLab. All rights reserved.
"""LayerNorm followed by a linear layer (or a GELU MLP) as one autograd
function that keeps less for the backward pass.

Plain autograd keeps the norm's input *and* its output (the linear layer's
input), and in the MLP also the GELU output next to its input. These
functions keep the norm's input and statistics and the first linear layer's
output only, and recompute the norm output and the GELU in the backward
pass with the same kernels (the gradients are those of the plain expression,
computed by the same matrix products). The recomputation is elementwise, no
matrix product is repeated; per token and block it keeps 6 C floats fewer
(C for each norm output, 4 C for the GELU output).

Autocast is honoured explicitly: the norm runs in the input dtype, the
linear layers in the autocast dtype, as plain autocast would run them; the
backward casts the same way whatever the autocast state of the thread it
runs in (``custom_fwd``/``custom_bwd`` also restore CUDA's).
"""
from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ...utils.torch_compat import (autocast_dtype, custom_bwd, custom_fwd,
                                   is_autocast_enabled)


def _compute_dtype(x: Tensor) -> Optional[torch.dtype]:
    """The autocast dtype of the linear layers, or None outside autocast."""
    device = x.device.type
    if is_autocast_enabled(device):
        return autocast_dtype(device)
    return None


def _no_autocast(x: Tensor):
    return torch.autocast(x.device.type, enabled=False)


def _cast(t: Optional[Tensor], dtype) -> Optional[Tensor]:
    return t if t is None or dtype is None else t.to(dtype)


def _linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``F.linear`` with F.linear's kernel (addmm on the 2D view), returning
    a tensor of its own (not a view) that callers may modify in place."""
    out = x.new_empty(*x.shape[:-1], weight.shape[0])  # (..., O)
    x2d, out2d = x.reshape(-1, x.shape[-1]), out.view(-1, weight.shape[0])
    if bias is None:
        torch.mm(x2d, weight.t(), out=out2d)
    else:
        torch.addmm(bias, x2d, weight.t(), out=out2d)
    return out


def _linear_grads(grad: Tensor, inp: Tensor, weight: Tensor, has_bias: bool):
    """Gradients of ``F.linear`` on 2D ``grad`` (T, O) and ``inp`` (T, I),
    computed as autograd's addmm backward computes them (the weight gradient
    in the weight's layout, so that AccumulateGrad need not copy it)."""
    grad_in = grad.mm(weight)  # (T, I)
    grad_w = grad.t().mm(inp)  # (O, I), contiguous like the weight
    grad_b = grad.sum(0) if has_bias else None  # (O,)
    return grad_in, grad_w, grad_b


class _NormLinear(torch.autograd.Function):

    @staticmethod
    @custom_fwd
    def forward(ctx, x, norm_w, norm_b, eps, weight, bias, mlp_w, mlp_b,
                dtype):
        shape = (x.shape[-1], )
        # casts are explicit: autocast off (entering it costs, so only
        # when it is on)
        with _no_autocast(x) if dtype is not None else nullcontext():
            y, mean, rstd = torch.native_layer_norm(x, shape, norm_w, norm_b,
                                                    eps)
            weight_c, bias_c = _cast(weight, dtype), _cast(bias, dtype)
            h = _linear(_cast(y, dtype), weight_c, bias_c)  # (..., O)
            out = h
            mlp_wc = mlp_bc = None
            if mlp_w is not None:  # GELU MLP: h is fc1's output
                mlp_wc, mlp_bc = _cast(mlp_w, dtype), _cast(mlp_b, dtype)
                out = _linear(F.gelu(h), mlp_wc, mlp_bc)  # (..., C)
        ctx.save_for_backward(x, mean, rstd, norm_w, norm_b, weight_c,
                              h if mlp_w is not None else None, mlp_wc)
        ctx.eps, ctx.dtype, ctx.param_dtype = eps, dtype, weight.dtype
        ctx.has_bias = (bias is not None, mlp_b is not None)
        return out

    @staticmethod
    @custom_bwd
    @once_differentiable
    def backward(ctx, grad):
        x, mean, rstd, norm_w, norm_b, weight, h, mlp_w = ctx.saved_tensors
        dtype, lead = ctx.dtype, x.shape[:-1]
        grad = grad.reshape(-1, grad.shape[-1])  # (T, O or C)
        grad_mlp_w = grad_mlp_b = None
        with _no_autocast(x) if is_autocast_enabled(
                x.device.type) else nullcontext():
            if mlp_w is not None:
                h = h.reshape(-1, h.shape[-1])  # (T, O)
                grad, grad_mlp_w, grad_mlp_b = _linear_grads(
                    grad, F.gelu(h), mlp_w, ctx.has_bias[1])
                grad = torch.ops.aten.gelu_backward(grad, h)  # (T, O)
            y = torch.native_layer_norm(x, (x.shape[-1], ), norm_w, norm_b,
                                        ctx.eps)[0]  # recomputed, (..., C)
            grad_y, grad_w, grad_b = _linear_grads(
                grad,
                _cast(y, dtype).reshape(-1, y.shape[-1]), weight,
                ctx.has_bias[0])
            grad_y = grad_y.view(*lead, -1).to(x.dtype)  # (..., C)
            grad_x, grad_nw, grad_nb = \
                torch.ops.aten.native_layer_norm_backward(
                    grad_y, x, (x.shape[-1], ), mean, rstd, norm_w, norm_b,
                    ctx.needs_input_grad[:3])
        grads = [grad_w, grad_b, grad_mlp_w, grad_mlp_b]
        grads = [_cast(g, ctx.param_dtype) for g in grads]  # as autocast's
        return (grad_x, grad_nw, grad_nb, None, *grads, None)


def _fusable(norm: nn.LayerNorm) -> bool:
    return (norm.elementwise_affine and norm.weight is not None
            and norm.bias is not None and len(norm.normalized_shape) == 1)


def _needs_grad(x: Tensor, *modules: nn.Module) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad
                                        or any(p.requires_grad for m in modules
                                               for p in m.parameters()))


def norm_linear(x: Tensor, norm: nn.LayerNorm, linear: nn.Linear) -> Tensor:
    """``linear(norm(x))`` keeping ``x`` instead of ``norm(x)``.

    Args:
        x (Tensor): Shape (..., C).
        norm (nn.LayerNorm): Affine LayerNorm over C.
        linear (nn.Linear): C -> O.

    Returns:
        Tensor: Shape (..., O).
    """
    if not _fusable(norm) or not _needs_grad(x, norm, linear):
        return linear(norm(x))
    return _NormLinear.apply(x, norm.weight, norm.bias, norm.eps,
                             linear.weight, linear.bias, None, None,
                             _compute_dtype(x))


def norm_mlp(x: Tensor, norm: nn.LayerNorm, mlp: nn.Module) -> Tensor:
    """``mlp(norm(x))`` for a GELU :class:`~.transformer.Mlp` without
    dropout, keeping ``x`` and fc1's output only; other MLPs run plainly.

    Args:
        x (Tensor): Shape (..., C).
        norm (nn.LayerNorm): Affine LayerNorm over C.
        mlp (Mlp): ``fc1``, GELU ``act``, ``fc2``, ``drop``.

    Returns:
        Tensor: Shape (..., C).
    """
    if not _fusable(norm) or type(mlp.act) is not nn.GELU or \
            mlp.act.approximate != 'none' or \
            (mlp.training and mlp.drop.p > 0):
        return mlp(norm(x))
    if not _needs_grad(x, norm, mlp):
        # inference: GELU in place, one (..., 4C) map allocated, not two
        h = mlp.fc1(norm(x))  # (..., O)
        return mlp.fc2(torch.ops.aten.gelu_(h))
    return _NormLinear.apply(x, norm.weight, norm.bias, norm.eps,
                             mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight,
                             mlp.fc2.bias, _compute_dtype(x))


__all__ = ['norm_linear', 'norm_mlp']
