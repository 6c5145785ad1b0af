# Copyright (c) OpenMMLab. All rights reserved.
"""The MixMAE hierarchical encoder (Swin-like, large non-shifted windows).

Paper: MixMAE, https://arxiv.org/abs/2205.13137 (official code: Sense-X/MixMIM
``models_mixmim.py``). Parameter names follow the official code so official
checkpoints map onto this module by name.

Shape legend: ``B`` batch, ``C`` channels of the current stage, ``H, W`` its
token grid, ``L = H*W``, ``(Wh, Ww)`` window, ``N = Wh*Ww`` tokens per window,
``nW`` windows per image, ``nH`` heads, ``Dh`` head dim, ``M`` number of mix
masks (1 or B). See :mod:`mixmae_mm.models.layers.mixing` for the mask
convention.
"""
import math
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..layers.mixing import (check_divisible, upsample_mask,
                             window_attn_mask)
from ..layers.pos_embed import sincos_pos_embed_2d
from ..layers.transformer import Mlp
from ..layers.window_attention import WindowAttention
from ..layers.window_ops import (pad_to_multiple, window_partition,
                                 window_reverse)


class PatchEmbed(nn.Module):
    """4x4 stride-4 convolution and LayerNorm; channels-last output.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Channels C.
        patch_size (int): Stride and kernel. Defaults to 4.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size=4):
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, H*4, W*4) -> tokens (B, H, W, C)."""
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """2x2 merging in timm's channel order: (0,0), (1,0), (0,1), (1,1) —
    the order of official MixMIM checkpoints (mmcv's Unfold order differs).

    Args:
        embed_dims (int): Input channels C; output has 2C.
    """

    def __init__(self, embed_dims: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * embed_dims)
        self.reduction = nn.Linear(4 * embed_dims, 2 * embed_dims, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H/2, W/2, 2C); H and W are even."""
        x = torch.cat([
            x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
            x[:, 1::2, 1::2]
        ], dim=-1)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))


class MixMAEBlock(nn.Module):
    """Pre-norm window-attention block (no shift).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads nH.
        window_size (tuple[int, int]): Nominal window.
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
        qkv_bias (bool): Bias in qkv. Defaults to True.
        drop_path (float): Stochastic depth rate. Defaults to 0.
        with_cp (bool): Activation checkpointing. Defaults to False.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: Tuple[int, int],
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_path: float = 0.,
                 with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, window_size,
                                    qkv_bias)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def _forward(self, x: Tensor, window: Tuple[int, int],
                 attn_mask: Optional[Tensor]) -> Tensor:
        b, h, w, c = x.shape
        y = pad_to_multiple(self.norm1(x), window)  # (B, Hp, Wp, C)
        hp, wp = y.shape[1:3]
        y = window_partition(y, window)  # (B, nW, N, C)
        y = self.attn(y, window, attn_mask)  # (B, nW, N, C)
        y = window_reverse(y, window, hp, wp)[:, :h, :w]  # (B, H, W, C)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward(self,
                x: Tensor,
                window: Tuple[int, int],
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            x (Tensor): Tokens, shape (B, H, W, C).
            window (tuple[int, int]): Window, at most the map size.
            attn_mask (Tensor, optional): Bool (M, nW, N, N), see
                :func:`~mixmae_mm.models.layers.mixing.window_attn_mask`.

        Returns:
            Tensor: Shape (B, H, W, C).
        """
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(
                self._forward, x, window, attn_mask, use_reentrant=False)
        return self._forward(x, window, attn_mask)


class MixMAEStage(nn.Module):
    """Blocks of one stage, then optional patch merging (official layout:
    ``layers.{s}.blocks.{j}``, ``layers.{s}.downsample``).

    Args:
        embed_dims (int): Channels C.
        depth (int): Number of blocks.
        num_heads (int): Heads nH.
        window_size (tuple[int, int]): Nominal window; clamped per side to
            the feature map (a small map gets global attention).
        mlp_ratio (float): MLP ratio. Defaults to 4.
        qkv_bias (bool): Bias in qkv. Defaults to True.
        drop_paths (Sequence[float]): Stochastic depth rate per block.
        downsample (bool): Merge patches after the blocks. Defaults to False.
        with_cp (bool): Activation checkpointing. Defaults to False.
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 window_size: Tuple[int, int],
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_paths: Sequence[float] = (),
                 downsample: bool = False,
                 with_cp: bool = False) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        drop_paths = list(drop_paths) or [0.] * depth
        self.blocks = nn.ModuleList([
            MixMAEBlock(embed_dims, num_heads, self.window_size, mlp_ratio,
                        qkv_bias, drop_paths[j], with_cp)
            for j in range(depth)
        ])
        self.downsample = PatchMerging(embed_dims) if downsample else None

    def forward(self,
                x: Tensor,
                groups: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            x (Tensor): Tokens, shape (B, H, W, C).
            groups (Tensor, optional): Attention groups (M, H, W): tokens
                attend only within their group (the mix mask upsampled to
                this stage). None: plain window attention.

        Returns:
            tuple[Tensor, Tensor]: The stage output (B, H, W, C) and the
            input of the next stage (B, H/2, W/2, 2C), which is the same
            tensor when there is no downsample.
        """
        h, w = x.shape[1:3]
        window = (min(self.window_size[0], h), min(self.window_size[1], w))
        if groups is None and (h % window[0] or w % window[1]):
            # keep real tokens from attending to the zero padding
            groups = x.new_zeros((1, h, w), dtype=torch.long)
        attn_mask = None
        if groups is not None:
            attn_mask = window_attn_mask(groups, window)  # (M, nW, N, N)
        for block in self.blocks:
            x = block(x, window, attn_mask)
        out = x
        if self.downsample is not None:
            x = self.downsample(x)
        return out, x


@MODELS.register_module()
class MixMAESwin(BaseModule):
    """MixMAE encoder: a hierarchical ViT with non-shifted windows.

    With a mix mask it runs masked self-attention at every stage (a token
    attends only to tokens of its own image, `MixMAE
    <https://arxiv.org/abs/2205.13137>`_); without one it is the plain
    encoder used for classification, detection and segmentation.

    Args:
        arch (str | dict): 'b'/'base', 'l'/'large', 'h'/'huge', or a dict
            with keys ``embed_dims``, ``depths`` and ``num_heads``.
            Defaults to 'base'.
        window_size (Sequence[int]): Window side per stage.
            Defaults to (14, 14, 14, 7).
        in_channels (int): Image channels. Defaults to 3.
        patch_size (int): Patch embedding stride. Defaults to 4.
        mlp_ratio (float): MLP ratio. Defaults to 4.
        qkv_bias (bool): Bias in qkv. Defaults to True.
        drop_path_rate (float): Stochastic depth, linearly increasing over
            blocks. Defaults to 0.
        out_indices (Sequence[int]): Stages whose normed outputs are
            returned. Defaults to (3, ).
        with_cp (bool): Activation checkpointing per block.
            Defaults to False.
        pretrained (str, optional): Deprecated, use ``init_cfg``.
        init_cfg (dict, optional): Initialisation config.
    """
    arch_zoo = {
        **dict.fromkeys(['b', 'base'], {
            'embed_dims': 128,
            'depths': [2, 2, 18, 2],
            'num_heads': [4, 8, 16, 32]
        }),
        **dict.fromkeys(['l', 'large'], {
            'embed_dims': 192,
            'depths': [2, 2, 18, 2],
            'num_heads': [6, 12, 24, 48]
        }),
        **dict.fromkeys(['h', 'huge'], {
            'embed_dims': 352,
            'depths': [2, 2, 18, 2],
            'num_heads': [11, 22, 44, 88]
        }),
    }
    essential_keys = {'embed_dims', 'depths', 'num_heads'}
    #: Stride of the mixing grid (the last stage).
    mix_stride = 32

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 window_size: Sequence[int] = (14, 14, 14, 7),
                 in_channels: int = 3,
                 patch_size: int = 4,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (3, ),
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained is not None:
            warnings.warn('`pretrained` is deprecated, use '
                          '`init_cfg=dict(type="Pretrained", checkpoint=...)`')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        depths = list(self.arch_settings['depths'])
        num_heads = list(self.arch_settings['num_heads'])
        num_stages = len(depths)
        if len(window_size) != num_stages:
            raise ValueError(f'window_size needs one entry per stage '
                             f'({num_stages}), got {tuple(window_size)}')
        if patch_size * 2**(num_stages - 1) != self.mix_stride:
            raise ValueError(
                f'patch_size {patch_size} with {num_stages} stages gives a '
                f'last-stage stride of {patch_size * 2**(num_stages - 1)}; '
                f'MixMAE mixes on a stride-{self.mix_stride} grid')
        out_indices = [i + num_stages if i < 0 else i for i in out_indices]
        for i in out_indices:
            if not 0 <= i < num_stages:
                raise ValueError(f'out_indices {i} out of range for '
                                 f'{num_stages} stages')
        self.depths = depths
        self.out_indices = tuple(out_indices)
        self.patch_size = patch_size
        self.window_size = [(w, w) if isinstance(w, int) else tuple(w)
                            for w in window_size]
        self.num_features = [self.embed_dims * 2**i for i in range(num_stages)]
        self.out_strides = [patch_size * 2**i for i in range(num_stages)]

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims,
                                      patch_size)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            self.layers.append(
                MixMAEStage(
                    self.num_features[i],
                    depth,
                    heads,
                    self.window_size[i],
                    mlp_ratio,
                    qkv_bias,
                    drop_paths=dpr[start:start + depth],
                    downsample=i < num_stages - 1,
                    with_cp=with_cp))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._pos_cache = {}

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise ValueError(f'unknown arch {arch!r}; choose one of '
                                 f'{sorted(set(self.arch_zoo))} or pass a '
                                 f'dict with keys {sorted(self.essential_keys)}')
            return dict(self.arch_zoo[key])
        if not isinstance(arch, dict) or not self.essential_keys <= set(arch):
            raise ValueError(f'a custom arch must be a dict with keys '
                             f'{sorted(self.essential_keys)}, got {arch!r}')
        if len(arch['depths']) != len(arch['num_heads']):
            raise ValueError(f'depths {arch["depths"]} and num_heads '
                             f'{arch["num_heads"]} differ in length')
        return dict(arch)

    def init_weights(self) -> None:
        """Official init (xavier-uniform Linear, unit LayerNorm), unless the
        weights come from a checkpoint."""
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            self.apply(_init_official)
        super().init_weights()

    def pos_embed(self, grid: Tuple[int, int], x: Tensor) -> Tensor:
        """Fixed sin-cos absolute position embedding (1, H, W, C) for the
        stage-1 grid (recomputed per grid, cached)."""
        key = (tuple(grid), x.device, x.dtype)
        if key not in self._pos_cache:
            table = sincos_pos_embed_2d(self.embed_dims, grid, x.device,
                                        x.dtype)
            self._pos_cache[key] = table.view(1, *grid, -1)
        return self._pos_cache[key]

    def forward(self,
                x: Tensor,
                mix_mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """
        Args:
            x (Tensor): Images (B, 3, H, W). With a mix mask they are already
                mixed (see :func:`~mixmae_mm.models.layers.mixing.mix_images`)
                and H, W must be multiples of 32; without one any size works
                (padded to 32, outputs cropped back).
            mix_mask (Tensor, optional): Bool (M, H/32, W/32), M in {1, B}.
                Enables masked self-attention: tokens attend only within
                their own image.

        Returns:
            tuple[Tensor]: One map (B, C_i, ceil(H/s_i), ceil(W/s_i)) per
            entry of ``out_indices``, with s_i the stage stride.
        """
        b, _, h, w = x.shape
        if mix_mask is not None:
            check_divisible((h, w), self.mix_stride, 'Mixed images')
            grid = (h // self.mix_stride, w // self.mix_stride)
            if mix_mask.dim() != 3 or tuple(mix_mask.shape[1:]) != grid \
                    or mix_mask.shape[0] not in (1, b):
                raise ValueError(
                    f'mix_mask must have shape (1 or {b}, {grid[0]}, '
                    f'{grid[1]}) for images of size {(h, w)}, got '
                    f'{tuple(mix_mask.shape)}')
        else:
            x = F.pad(x, (0, (-w) % self.mix_stride, 0,
                          (-h) % self.mix_stride))
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        x = x + self.pos_embed(x.shape[1:3], x)

        outs = []
        for i, stage in enumerate(self.layers):
            groups = None
            if mix_mask is not None:
                scale = self.mix_stride // self.out_strides[i]
                groups = upsample_mask(mix_mask, scale).long()  # (M, H, W)
            out, x = stage(x, groups)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)  # (B, H, W, C)
                s = self.out_strides[i]
                out = out[:, :math.ceil(h / s), :math.ceil(w / s)]
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


def _init_official(m: nn.Module) -> None:
    """Official MixMIM init ("following official JAX ViT")."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


__all__: List[str] = ['MixMAESwin', 'MixMAEBlock', 'MixMAEStage']
