# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Plain transformer parts with timm's parameter names (``norm1``,
``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``), so official
MixMIM checkpoints map onto them by name."""
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor, nn

from .cell_attention import cell_attention


class Mlp(nn.Module):
    """Two-layer GELU MLP.

    Args:
        embed_dims (int): Input and output channels C.
        hidden_dims (int): Hidden channels.
    """

    def __init__(self, embed_dims: int, hidden_dims: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Global multi-head self-attention (decoder).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads nH.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        """Tokens (B, L, C) -> (B, L, C)."""
        # all L tokens form one cell
        x = cell_attention(self.qkv(x), None, 1, x.shape[1], self.num_heads,
                           self.scale)  # (B, L, C)
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm ViT block (timm ``Block``), used by the decoder.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads nH.
        mlp_ratio (float): Hidden width of the MLP over C. Defaults to 4.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-5 (official).
        drop_path (float): Stochastic depth rate. Defaults to 0.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 norm_eps: float = 1e-5,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = Attention(embed_dims, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Tokens (B, L, C) -> (B, L, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
