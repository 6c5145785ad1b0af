# Copyright (c) OpenMMLab. All rights reserved.
"""Softmax attention within equal-sized cells, with an additive bias
broadcast over the batch, as one autograd function.

Autograd through the plain expression (views of the fused qkv, matmuls,
softmax) stacks the q/k/v gradients, whose innermost stride is not 1, and
reshapes them back into the fused layout, and allocates a second
attention-sized map for the softmax. :func:`cell_attention` computes the same
values with the same kernels (matmul, softmax and its backward, the latter
two in place), writes the qkv gradient straight into the fused (B, K*n, 3C)
layout and keeps q, k and v contiguous for every product (a whole MixMAE-B
CPU step: about 1-3% faster, within the noise of the machine).
:func:`cell_attention_reference` is the plain expression, for tests and
attention dropout.

``F.scaled_dot_product_attention`` serves two cases. On the CPU, fp32
without gradients: its fused kernel (flash) takes the bias as a float mask
and is about 2x faster than the explicit products on dense 800x1333 maps; it
is not used with gradients (the CPU kernel cannot return the bias gradient;
torch then falls back to its math path) nor in bf16 (no faster, and its bf16
backward is several times slower). On other devices (GPUs) always, when the
bias broadcasts over the flattened (B*K) batch: their fused kernels return
the bias gradient too (not measured in this repository's CPU benchmarks).

Shapes: ``B`` batch, ``K`` cells, ``n`` tokens per cell, ``nH`` heads,
``Dh`` head dim, ``C = nH*Dh``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


def _split_qkv(qkv: Tensor, k: int, n: int, num_heads: int):
    """(B, K*n, 3C) -> three views (B, K, nH, n, Dh)."""
    b = qkv.shape[0]
    qkv = qkv.view(b, k, n, 3, num_heads, -1)  # (B, K, n, 3, nH, Dh)
    return qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, K, nH, n, Dh) -> (B, K*n, C)."""
    b, k, _, n, _ = x.shape
    return x.transpose(2, 3).reshape(b, k * n, -1)  # (B, K*n, C)


class _CellAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, qkv: Tensor, bias: Tensor, k: int, n: int, num_heads: int,
                scale: float) -> Tensor:
        q, key, v = _split_qkv(qkv, k, n, num_heads)  # (B, K, nH, n, Dh)
        q = torch.mul(
            q,
            scale,
            out=torch.empty_like(
                q, memory_format=torch.contiguous_format))  # contiguous copy
        key, v = key.contiguous(), v.contiguous()  # (B, K, nH, n, Dh)
        attn = q @ key.transpose(-2, -1)  # (B, K, nH, n, n) logits
        if bias is not None:
            attn.add_(bias)
        # in place (the same kernel, row by row): no second map allocated
        torch.ops.aten._softmax.out(attn, -1, False, out=attn)
        ctx.save_for_backward(q, key, v, attn)
        ctx.scale = scale
        ctx.bias_shape = None if bias is None else bias.shape
        return _merge_heads(attn @ v)  # (B, K*n, C)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        q, key, v, attn = ctx.saved_tensors  # q is scaled
        b, k, nh, n, dh = q.shape
        grad = grad.reshape(b, k, n, nh, dh).transpose(2, 3)  # (B,K,nH,n,Dh)
        grad_qkv = grad.new_empty(b, k, n, 3, nh, dh)  # (B, K, n, 3, nH, Dh)
        gq, gk, gv = grad_qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)
        gv.copy_(attn.transpose(-2, -1) @ grad)  # (B, K, nH, n, Dh)
        grad_attn = grad @ v.transpose(-2, -1)  # (B, K, nH, n, n)
        torch.ops.aten._softmax_backward_data.out(
            grad_attn, attn, -1, attn.dtype,
            grad_input=grad_attn)  # in place: grad of the logits
        grad_bias = None
        if ctx.bias_shape is not None and ctx.needs_input_grad[1]:
            grad_bias = grad_attn.sum_to_size(ctx.bias_shape)
        torch.mul(grad_attn @ key, ctx.scale, out=gq)  # (B, K, nH, n, Dh)
        gk.copy_(grad_attn.transpose(-2, -1) @ q)  # q carries the scale
        grad_qkv = grad_qkv.view(b, k * n, -1)  # (B, K*n, 3C)
        return grad_qkv, grad_bias, None, None, None, None


def cell_attention(qkv: Tensor, bias: Optional[Tensor], num_cells: int,
                   size: int, num_heads: int, scale: float) -> Tensor:
    """Attention within each cell.

    Args:
        qkv (Tensor): Fused projections, shape (B, K*n, 3C), cell by cell.
        bias (Tensor, optional): Additive logit bias broadcastable to
            (B, K, nH, n, n), e.g. (1, nH, n, n) or (M, K, nH, n, n), in the
            dtype of ``qkv``; -inf entries mask pairs (never a whole row).
        num_cells (int): K.
        size (int): n.
        num_heads (int): nH.
        scale (float): Logit scale, usually ``Dh ** -0.5``.

    Returns:
        Tensor: Shape (B, K*n, C), before the output projection.
    """
    if _use_sdpa(qkv, bias):
        return _sdpa(qkv, bias, num_cells, size, num_heads, scale)
    return _CellAttention.apply(qkv, bias, num_cells, size, num_heads, scale)


def _use_sdpa(qkv: Tensor, bias: Optional[Tensor]) -> bool:
    """Whether the fused SDPA kernels serve this call (module docstring)."""
    # the fused kernels take 4D inputs: the bias must broadcast over B*K
    if bias is not None and not (bias.dim() == 4 and
                                 (bias.shape[0] == 1 or qkv.shape[0] == 1)):
        return False
    if qkv.device.type != 'cpu':
        return True
    needs_grad = torch.is_grad_enabled() and (qkv.requires_grad or
                                              (bias is not None
                                               and bias.requires_grad))
    return not needs_grad and qkv.dtype == torch.float32


def _sdpa(qkv: Tensor, bias: Optional[Tensor], k: int, n: int, num_heads: int,
          scale: float) -> Tensor:
    """:func:`cell_attention` by ``F.scaled_dot_product_attention``."""
    q, key, v = (t.flatten(0, 1)
                 for t in _split_qkv(qkv, k, n, num_heads))  # (B*K, nH, n, Dh)
    x = F.scaled_dot_product_attention(
        q, key, v, attn_mask=bias, scale=scale)  # (B*K, nH, n, Dh)
    return _merge_heads(x.unflatten(0, (-1, k)))  # (B, K*n, C)


def cell_attention_reference(qkv: Tensor,
                             bias: Optional[Tensor],
                             num_cells: int,
                             size: int,
                             num_heads: int,
                             scale: float,
                             attn_drop=None) -> Tensor:
    """:func:`cell_attention` as a plain autograd expression, with optional
    dropout (a module) on the attention weights."""
    q, key, v = _split_qkv(qkv, num_cells, size, num_heads)
    attn = (q * scale) @ key.transpose(-2, -1)  # (B, K, nH, n, n)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    if attn_drop is not None:
        attn = attn_drop(attn)
    return _merge_heads(attn @ v)  # (B, K*n, C)


__all__ = ['cell_attention', 'cell_attention_reference']
