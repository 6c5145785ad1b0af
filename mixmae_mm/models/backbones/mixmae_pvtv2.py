# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""The MixMAE encoder on PVTv2 (arXiv 2106.13797) in mmdet's layout:
modules, names and shapes of mmdet's ``PyramidVisionTransformerV2``, so
state dicts load strictly both ways and, without a mix mask, the forward
computes what mmdet's computes.

With a mix mask no information crosses between the two mixed images:

* attention: each reduced key comes from one ``sr x sr`` window inside one
  32-px square (checked), so a query attends only to its image's keys;
* the convolutions that read neighbours (overlapping patch embeddings, the
  FFN's depth-wise 3x3) run per image, see :func:`group_conv`;
* LayerNorm, 1x1 convolutions, linear layers and GELU are token-local.

Shapes: ``B`` batch, ``C`` stage channels, ``(H, W)`` stage grid,
``L = H*W``, ``L_k`` reduced keys, ``nH`` heads, ``Dh`` head dim, ``M``
mix masks (1 or B; convention in :mod:`mixmae_mm.models.layers.mixing`).
"""
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn.bricks.drop import DropPath
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..layers.per_image import (PatchEmbed, SpatialReductionAttention,
                                group_conv, nchw_to_nlc, nlc_to_nchw,
                                same_image_key_mask)
from .base_encoder import MixMAEEncoder, pvt_init

#: LayerNorm eps of every norm, as mmdet's PVTv2 (``norm_cfg`` eps 1e-6).
EPS = 1e-6
LINEAR_REFUSED = ('the linear PVTv2 variant is not supported: its keys are '
                  'pooled to a 7x7 grid whose bins straddle the 32-px '
                  'squares of the mix mask, so attention could not keep the '
                  'two images apart (mmdet has no such variant either)')


class StageGroups(NamedTuple):
    """What a mix mask changes in one stage; all None: the plain forward.

    ``embed_in`` (M, H_in, W_in) and ``tokens`` (M, H, W): image groups
    (True: partner) of the patch embedding's input grid and of the stage's
    tokens, for :func:`group_conv`. ``attn_mask`` (M, 1, L, L_k): True
    where query and reduced key belong to the same image.
    """
    embed_in: Optional[Tensor] = None
    tokens: Optional[Tensor] = None
    attn_mask: Optional[Tensor] = None


class MixFFN(nn.Module):
    """1x1 conv, depth-wise 3x3, GELU, 1x1 conv; mmdet's indices (the
    Identity placeholders are mmdet's dropouts, so fc2 stays ``layers.4``).
    """

    def __init__(self, embed_dims: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(embed_dims, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.GELU(), nn.Identity(), nn.Conv2d(hidden, embed_dims, 1),
            nn.Identity())

    def forward(self, x: Tensor, hw: Tuple[int, int],
                groups: Optional[Tensor] = None) -> Tensor:
        """(B, L, C) -> (B, L, C); ``groups`` (M, H, W) of the tokens."""
        x = self.layers[0](nlc_to_nchw(x, hw))  # (B, hidden, H, W)
        x = group_conv(self.layers[1], x, groups, groups)
        return nchw_to_nlc(self.layers[2:](x))


class PVTEncoderLayer(nn.Module):
    """Pre-norm block: spatial-reduction attention, then MixFFN."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: int,
                 sr_ratio: int, qkv_bias: bool = True,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=EPS)
        self.attn = SpatialReductionAttention(embed_dims, num_heads,
                                              sr_ratio, qkv_bias)
        self.norm2 = nn.LayerNorm(embed_dims, eps=EPS)
        self.ffn = MixFFN(embed_dims, mlp_ratio * embed_dims)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: Tensor, hw: Tuple[int, int],
                groups: StageGroups) -> Tensor:
        """(B, L, C) -> (B, L, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x), hw, groups.attn_mask))
        return x + self.drop_path(self.ffn(self.norm2(x), hw, groups.tokens))


@MODELS.register_module()
class MixMAEPVTv2(MixMAEEncoder):
    """PVTv2 encoder for MixMAE: mmdet's ``PyramidVisionTransformerV2``
    without a mix mask; with one, no information crosses between the two
    mixed images (module docstring).

    Args:
        arch (str | dict): 'b0' ... 'b5' (mmdet's RetinaNet configs), or a
            dict with ``embed_dims`` (per-head width, as mmdet) and
            ``num_layers``, optionally ``num_heads`` ([1, 2, 5, 8]),
            ``mlp_ratios`` ([8, 8, 4, 4]) and ``sr_ratios`` ([8, 4, 2, 1]).
            The linear variant ('b2_li', ``linear=True``) is refused.
            Defaults to 'b2'.
        in_channels (int): Image channels. Defaults to 3.
        qkv_bias (bool): Bias in q, k, v and out projections.
            Defaults to True.
        drop_path_rate (float): Stochastic depth, linear over blocks.
            Defaults to 0 (MixMAE pretrains without it; mmdet's 0.1 is a
            fine-tuning value, set it there).
        out_indices (Sequence[int]): Stages returned. Defaults to (3, ),
            what MixMAE needs; dense fine-tuning uses (0, 1, 2, 3).
        init_cfg (dict, optional): ``type='Pretrained'`` (``checkpoint``,
            optional ``prefix``, ``strict``) loads mmdet-layout weights
            strictly; otherwise mmdet's random init.
    """
    arch_zoo = {
        'b0': dict(embed_dims=32, num_layers=[2, 2, 2, 2]),
        'b1': dict(embed_dims=64, num_layers=[2, 2, 2, 2]),
        'b2': dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
        'b3': dict(embed_dims=64, num_layers=[3, 4, 18, 3]),
        'b4': dict(embed_dims=64, num_layers=[3, 8, 27, 3]),
        'b5': dict(embed_dims=64, num_layers=[3, 6, 40, 3],
                   mlp_ratios=[4, 4, 4, 4]),
    }
    arch_defaults = dict(num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
                         sr_ratios=[8, 4, 2, 1], linear=False)
    #: PVTv2's patch embeddings (padding kernel // 2) for the 4 stages.
    patch_sizes = (7, 3, 3, 3)
    strides = (4, 2, 2, 2)

    def __init__(self,
                 arch: Union[str, dict] = 'b2',
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (3, ),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        settings = self._parse_arch(arch)
        self.embed_dims = settings['embed_dims']
        self.depths = list(settings['num_layers'])
        self.num_heads = list(settings['num_heads'])
        self.mlp_ratios = list(settings['mlp_ratios'])
        self.sr_ratios = list(settings['sr_ratios'])
        self.num_features = [self.embed_dims * h for h in self.num_heads]
        self.out_strides = [math.prod(self.strides[:i + 1]) for i in range(4)]
        self.out_indices = self.parse_out_indices(out_indices)

        # stochastic depth as mmdet: float32 linspace, read back
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths),
                             device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(self.depths):
            # built in mmdet's order, so a seed gives mmdet's initial weights
            dims, start = self.num_features[i], sum(self.depths[:i])
            k = self.patch_sizes[i]
            patch_embed = PatchEmbed(in_channels, dims, k, self.strides[i],
                                     k // 2, eps=EPS)
            blocks = nn.ModuleList([
                PVTEncoderLayer(dims, self.num_heads[i], self.mlp_ratios[i],
                                self.sr_ratios[i], qkv_bias, dpr[start + j])
                for j in range(depth)
            ])
            self.layers.append(nn.ModuleList(
                [patch_embed, blocks, nn.LayerNorm(dims, eps=EPS)]))
            in_channels = dims

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if 'li' in arch.lower():
                raise ValueError(f'{arch!r}: {LINEAR_REFUSED}')
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown arch {arch!r}; choose one of '
                                 f'{sorted(self.arch_zoo)} or pass a dict')
            arch = self.arch_zoo[arch.lower()]
        if not isinstance(arch, dict) or \
                not {'embed_dims', 'num_layers'} <= set(arch) or \
                not set(arch) <= {'embed_dims', *self.arch_defaults,
                                  'num_layers'}:
            raise ValueError(
                f'a custom arch must be a dict with keys embed_dims and '
                f'num_layers, optionally {sorted(self.arch_defaults)}; got '
                f'{arch!r}')
        settings = {**self.arch_defaults, **arch}
        if settings['linear']:
            raise ValueError(f'{arch!r}: {LINEAR_REFUSED}')
        for key in ('num_layers', 'num_heads', 'mlp_ratios', 'sr_ratios'):
            if len(settings[key]) != 4:
                raise ValueError(f'PVTv2 has 4 stages: {key} needs 4 '
                                 f'entries, got {settings[key]}')
        return settings

    def init_random(self) -> None:
        """mmdet's init (:func:`pvt_init`); ``init_weights`` then loads
        ``Pretrained``."""
        pvt_init(self)

    def layer_id(self, name: str) -> Optional[int]:
        """Layer ids (:meth:`MixMAEEncoder.get_layer_depth`): the patch
        embedding of stage s > 0 with the stage's first block, the norm
        closing stage s with its last block."""
        parts = name.split('.')
        if parts[0] != 'layers':
            return None
        stage, part = int(parts[1]), parts[2]
        if part == '0':  # patch embedding
            return self.block_id(stage, 0) if stage else 0
        if part == '1':  # blocks
            return self.block_id(stage, int(parts[3]))
        return sum(self.depths[:stage + 1])  # stage norm

    def check_masked_arch(self) -> None:
        """Every reduced key must lie in one 32-px square."""
        self.check_key_windows(self.sr_ratios)

    def image_groups(self,
                     mix_mask: Tensor,
                     x: Tensor,
                     num_partner: Optional[int] = None) -> List[StageGroups]:
        """Per stage, the image groups and attention mask of a mix mask
        (M, H/32, W/32) for the images ``x`` (B, C, H, W)."""
        mask = self.mask_on_device(mix_mask, x, num_partner)
        groups, embed_in = [], self.groups_at(mask, 1)  # pixels
        for stride, sr in zip(self.out_strides, self.sr_ratios):
            tokens = self.groups_at(mask, stride)  # (M, H, W)
            # a reduced key is one sr x sr window: one square's group
            keys = self.groups_at(mask, stride * sr)
            groups.append(StageGroups(embed_in, tokens,
                                      same_image_key_mask(tokens, keys)))
            embed_in = tokens
        return groups

    def forward(self,
                x: Tensor,
                mix_mask: Optional[Tensor] = None,
                num_partner: Optional[int] = None) -> Tuple[Tensor, ...]:
        """Images (B, C, H, W) -> one map (B, C_i, H_i, W_i) per entry of
        ``out_indices`` (mmdet's sizes, H/s_i for H divisible by s_i).

        With ``mix_mask``, bool (M, H/32, W/32), M in {1, B}, True where
        the square comes from the partner ``x.flip(0)``: ``x`` is mixed and
        H, W are multiples of 32; ``num_partner``, where the caller knows
        it, the squares each mask gives to the partner (checked, see
        :meth:`check_partner_count`). Without: any size mmdet takes."""
        stage_groups = [StageGroups()] * 4
        if mix_mask is not None:
            stage_groups = self.image_groups(mix_mask, x, num_partner)
        outs = []
        for i, layer in enumerate(self.layers):
            # indexed, not unpacked: torch 2.1's Dynamo cannot unpack a
            # ModuleList (a graph break there)
            patch_embed, blocks, norm = layer[0], layer[1], layer[2]
            groups = stage_groups[i]
            x, hw = patch_embed(x, groups.embed_in,
                                groups.tokens)  # (B, L, C_i)
            for block in blocks:
                x = block(x, hw, groups)
            x = nlc_to_nchw(norm(x), hw)  # (B, C_i, H_i, W_i)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


__all__ = [
    'MixMAEPVTv2', 'group_conv', 'SpatialReductionAttention', 'nlc_to_nchw',
    'nchw_to_nlc'
]
