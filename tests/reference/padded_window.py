"""Masked window attention written the textbook way, as the oracle of the
token-layout encoder: zero-pad the map to window multiples, partition it
into windows, attend inside each window with a bool mask that allows only
pairs of the same image group (padding is a group of its own), reverse and
crop. It reads the weights of the package's modules but none of their
forward code. See ``mixmae_swin`` for the shape legend."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mixmae_mm.models.layers.mixing import upsample_mask
from mixmae_mm.models.layers.rel_pos import relative_position_index

#: Group id of padding tokens: real tokens never attend to them.
PAD_GROUP = 2


def pad_to_multiple(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """Zero-pad (B, H, W, C) at the bottom/right to window multiples."""
    h, w = x.shape[1:3]
    return F.pad(x, (0, 0, 0, (-w) % window[1], 0, (-h) % window[0]))


def window_partition(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """(B, Hp, Wp, C) -> windows (B, nW, N, C), row-major."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c)
    return x.transpose(2, 3).reshape(b, -1, wh * ww, c)


def window_reverse(windows: Tensor, window: Tuple[int, int], h: int,
                   w: int) -> Tensor:
    """Inverse of :func:`window_partition` for a padded map of (h, w)."""
    b, _, _, c = windows.shape
    wh, ww = window
    x = windows.view(b, h // wh, w // ww, wh, ww, c)
    return x.transpose(2, 3).reshape(b, h, w, c)


def window_attn_mask(groups: Tensor, window: Tuple[int, int]) -> Tensor:
    """Bool (M, nW, N, N), True = may attend: same group, padding apart.

    Args:
        groups (Tensor): Integer groups (M, H, W), values below PAD_GROUP.
        window (tuple[int, int]): ``(Wh, Ww)``.
    """
    groups = pad_to_multiple(groups[..., None].long() - PAD_GROUP,
                             window) + PAD_GROUP  # (M, Hp, Wp, 1)
    groups = window_partition(groups, window)[..., 0]  # (M, nW, N)
    return groups[..., :, None] == groups[..., None, :]


def mix_tokens(x: Tensor, mix_mask: Tensor) -> Tensor:
    """Token-level mixing as the official code: (B, H, W, C) map whose grid
    is a multiple of the mask grid; True takes the partner ``x.flip(0)``."""
    m = upsample_mask(mix_mask, x.shape[1] // mix_mask.shape[1])[..., None]
    return torch.where(m, x.flip(0), x)


def window_attention(attn, x: Tensor, window: Tuple[int, int],
                     mask: Optional[Tensor] = None) -> Tensor:
    """A ``WindowAttention``'s weights on windows (B, nW, N, C) with an
    optional bool mask (M, nW, N, N); returns (B, nW, N, C)."""
    b, nw, n, c = x.shape
    nh = attn.num_heads
    qkv = attn.qkv(x).view(b, nw, n, 3, nh, c // nh)
    q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)  # each (B, nW, nH, N, Dh)
    index = relative_position_index(window, attn.window_size)  # (N, N)
    bias = attn.relative_position_bias_table[index].permute(2, 0, 1)
    logits = q @ k.transpose(-1, -2) * attn.scale + bias  # (B,nW,nH,N,N)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, :, None], float('-inf'))
    out = logits.softmax(-1) @ v  # (B, nW, nH, N, Dh)
    return attn.proj(out.transpose(2, 3).reshape(b, nw, n, c))


def block(blk, x: Tensor, window: Tuple[int, int],
          mask: Optional[Tensor]) -> Tensor:
    """A ``MixMAEBlock``'s weights on a map (B, H, W, C), eval mode."""
    h, w = x.shape[1:3]
    y = pad_to_multiple(blk.norm1(x), window)  # (B, Hp, Wp, C)
    hp, wp = y.shape[1:3]
    y = window_attention(blk.attn, window_partition(y, window), window, mask)
    x = x + window_reverse(y, window, hp, wp)[:, :h, :w]
    return x + blk.mlp(blk.norm2(x))


def stage(stg, x: Tensor, groups: Optional[Tensor] = None) -> Tensor:
    """A ``MixMAEStage``'s blocks on a map (B, H, W, C) with optional image
    groups (M, H, W); returns the stage output before downsampling."""
    h, w = x.shape[1:3]
    window = (min(stg.window_size[0], h), min(stg.window_size[1], w))
    if groups is None:
        groups = torch.zeros((1, h, w), dtype=torch.long)
    mask = window_attn_mask(groups, window)  # padding never attended
    for blk in stg.blocks:
        x = block(blk, x, window, mask)
    return x


def cell_attention(qkv: Tensor, bias: Optional[Tensor], num_cells: int,
                   size: int, num_heads: int, scale: float) -> Tensor:
    """Softmax attention of each cell, one cell at a time: (B, K*n, 3C) ->
    (B, K*n, C), bias broadcastable to (B, K, nH, n, n)."""
    b, _, c3 = qkv.shape
    dh = c3 // 3 // num_heads
    out = []
    for i, cell in enumerate(qkv.split(size, dim=1)):  # (B, n, 3C)
        q, k, v = cell.view(b, size, 3, num_heads, dh).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) * scale  # (B, nH, n, n)
        if bias is not None:
            cell_bias = bias.expand(b, num_cells, *bias.shape[-3:])[:, i] \
                if bias.dim() == 5 else bias[i if bias.shape[0] > 1 else 0]
            logits = logits + cell_bias
        x = logits.softmax(-1) @ v  # (B, nH, n, Dh)
        out.append(x.transpose(1, 2).reshape(b, size, -1))
    return torch.cat(out, dim=1)
