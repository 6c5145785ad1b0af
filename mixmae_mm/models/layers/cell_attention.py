# Copyright (c) OpenMMLab. All rights reserved.
"""Softmax attention within equal-sized cells, with an additive bias
broadcast over the batch: the fused SDPA kernel and the plain expression
side by side in one function.

``F.scaled_dot_product_attention`` serves two cases. On the CPU, fp32
without gradients: its fused kernel (flash) takes the bias as a float mask
and is about 2x faster than the explicit products on dense 800x1333 maps; it
is not used with gradients (the CPU kernel cannot return the bias gradient;
torch then falls back to its math path) nor in bf16 (no faster, and its bf16
backward is several times slower). On other devices (GPUs) always, when the
bias broadcasts over the flattened (B*K) batch: their fused kernels return
the bias gradient too, or torch falls back to its math path. Everything
else, attention dropout included, takes the plain expression.

(A custom autograd function that wrote the qkv gradient straight into the
fused layout was removed: a whole MixMAE-B CPU step was only 1-3% faster
with it, and the project keeps a custom autograd function only when it saves
at least 5% of step time or peak memory; see the README's Performance.)

Shapes: ``B`` batch, ``K`` cells, ``n`` tokens per cell, ``nH`` heads,
``Dh`` head dim, ``C = nH*Dh``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _split_qkv(qkv: Tensor, k: int, n: int, num_heads: int):
    """(B, K*n, 3C) -> three views (B, K, nH, n, Dh)."""
    b = qkv.shape[0]
    qkv = qkv.view(b, k, n, 3, num_heads, -1)  # (B, K, n, 3, nH, Dh)
    return qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, K, nH, n, Dh) -> (B, K*n, C)."""
    b, k, _, n, _ = x.shape
    return x.transpose(2, 3).reshape(b, k * n, -1)  # (B, K*n, C)


def cell_attention(qkv: Tensor,
                   bias: Optional[Tensor],
                   num_cells: int,
                   size: int,
                   num_heads: int,
                   scale: float,
                   attn_drop: Optional[nn.Module] = None) -> Tensor:
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
        attn_drop (nn.Module, optional): Dropout on the attention weights
            (active ones take the plain expression).

    Returns:
        Tensor: Shape (B, K*n, C), before the output projection.
    """
    q, key, v = _split_qkv(qkv, num_cells, size,
                           num_heads)  # (B, K, nH, n, Dh)
    dropout = attn_drop is not None and attn_drop.training and attn_drop.p
    if not dropout and _use_sdpa(qkv, bias):
        x = F.scaled_dot_product_attention(
            q.flatten(0, 1), key.flatten(0, 1), v.flatten(0, 1),
            attn_mask=bias, scale=scale)  # (B*K, nH, n, Dh)
        return _merge_heads(x.unflatten(0, (-1, num_cells)))  # (B, K*n, C)
    attn = (q * scale) @ key.transpose(-2, -1)  # (B, K, nH, n, n)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout:
        attn = attn_drop(attn)
    return _merge_heads(attn @ v)  # (B, K*n, C)


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


__all__ = ['cell_attention']
