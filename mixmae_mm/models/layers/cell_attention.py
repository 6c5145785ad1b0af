# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Softmax attention within equal-sized cells, with an additive bias
broadcast over the batch: the fused SDPA kernel and the plain expression
side by side in one function.

When SDPA serves a call (:func:`_use_sdpa`): on the CPU only in fp32
without gradients, where its fused (flash) kernel takes the bias as a float
mask and is about 2x faster than the plain products on dense 800x1333 maps
(the CPU kernel cannot return the bias gradient, and its bf16 backward is
several times slower); on other devices (GPUs) always, when the bias
broadcasts over the flattened (B*K) batch. The measurements are in the
docs (docs/en/performance.md).

Shapes: ``B`` batch, ``K`` cells, ``n`` tokens per cell, ``nH`` heads,
``Dh`` head dim, ``C = nH*Dh``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


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
    b = qkv.shape[0]
    qkv = qkv.view(b, num_cells, size, 3, num_heads, -1)  # (B,K,n,3,nH,Dh)
    q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # (B, K, nH, n, Dh)
    if _use_sdpa(qkv, bias):
        x = F.scaled_dot_product_attention(
            q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1),
            attn_mask=bias, scale=scale)  # (B*K, nH, n, Dh)
        x = x.unflatten(0, (b, num_cells))  # (B, K, nH, n, Dh)
    else:
        attn = (q * scale) @ k.transpose(-2, -1)  # (B, K, nH, n, n)
        if bias is not None:
            attn = attn + bias
        x = attn.softmax(dim=-1) @ v  # (B, K, nH, n, Dh)
    return x.transpose(2, 3).reshape(b, num_cells * size, -1)  # (B, K*n, C)


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
