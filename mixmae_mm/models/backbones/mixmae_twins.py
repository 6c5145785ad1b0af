# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
# Module layout, names and the LSA padding mask follow mmsegmentation 1.2.2
# (mmseg/models/backbones/twins.py, Copyright (c) OpenMMLab, Apache-2.0).
"""The MixMAE encoder on Twins (arXiv 2104.13840), PCPVT and SVT, in
mmseg's layout: modules, names and shapes of mmseg's ``PCPVT`` / ``SVT``,
so state dicts load strictly both ways and, without a mix mask, the forward
computes what mmseg's computes.

With a mix mask no information crosses between the two mixed images:

* patch embeddings: kernel = stride (4, 2, 2, 2), so a patch lies inside
  one 32-px square (no padding at sides that are multiples of 32);
* global sub-sampled attention (GSA): each reduced key comes from one
  ``sr x sr`` window inside one 32-px square (checked), so a query attends
  only to its image's keys, as :class:`MixMAEPVTv2`;
* locally-grouped attention (LSA, SVT): a 7x7 window at stride 4 is 28 px
  and straddles the squares, so a token attends only to the tokens of its
  image inside its window (a boolean mask: window count and sizes do not
  depend on the mask);
* the conditional position encoding (PEG, a depth-wise 3x3) runs per image
  (:func:`group_conv`);
* LayerNorm, linear layers and GELU are token-local.

Shapes: ``B`` batch, ``C`` stage channels, ``(H, W)`` stage grid,
``L = H*W``, ``L_k`` reduced keys, ``nW`` windows, ``T = ws*ws`` tokens of
a window, ``nH`` heads, ``Dh`` head dim, ``M`` mix masks (1 or B).
"""
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ...utils.torch_compat import known_true
from ..layers.dense_windows import (padded_size, window_partition,
                                    window_reverse)
from ..layers.per_image import (PatchEmbed, SpatialReductionAttention,
                                group_conv, nchw_to_nlc, nlc_to_nchw,
                                same_image_key_mask)
from .base_encoder import MixMAEEncoder, pvt_init

#: LayerNorm eps of every norm, as mmseg's Twins (``dict(type='LN')``).
EPS = 1e-5


class StageGroups(NamedTuple):
    """What a mix mask changes in one stage; all None: the plain forward.

    ``tokens`` (M, H, W): image groups (True: partner) of the stage's
    tokens, for the PEG's :func:`group_conv`. ``gsa_mask`` (M, 1, L, L_k):
    True where query and reduced key belong to the same image.
    ``lsa_mask`` (M, nW, 1, T, T): the same inside each LSA window.
    """
    tokens: Optional[Tensor] = None
    gsa_mask: Optional[Tensor] = None
    lsa_mask: Optional[Tensor] = None


def to_windows(x: Tensor, ws: int) -> Tensor:
    """Per-token values (B, Hp, Wp) -> (B, nW, ws*ws), windows in the
    order of :func:`window_partition` (Hp, Wp multiples of ``ws``)."""
    return window_partition(x[..., None], (ws, ws))[..., 0]


def lsa_padding_mask(hw: Tuple[int, int], ws: int,
                     device=None) -> Optional[Tensor]:
    """mmseg's LSA padding mask, bool (1, nW, 1, T, T), True: may attend;
    None where it allows everything.

    mmseg marks padded rows with ``mask[:, -pad_b:, :]`` and columns with
    ``mask[:, :, -pad_r:]``; with ``pad_b == 0`` (or ``pad_r == 0``) the
    slice ``-0:`` is the whole mask, which then allows every pair: padded
    (zero) tokens are attended whenever only one side is padded. Kept as
    is, so that weights loaded into mmseg's class give the same outputs
    (docs: encoders, Twins)."""
    (h, w), (hp, wp) = hw, padded_size(hw, ws)
    # where known without a guard (eager, or a graph of one size); under
    # dynamic shapes the mask is built whatever the size (a branch would
    # make a graph per class of sizes), the same mask from tensors
    if known_true(hp == h) or known_true(wp == w):
        return None  # all padded, or (mmseg's slice) all marked: no mask
    rows = torch.arange(hp, device=device) >= h  # (Hp,) padding rows
    cols = torch.arange(wp, device=device) >= w  # (Wp,)
    # mmseg's slice: with one side unpadded, every token is marked
    pad = rows[:, None] | cols | ~(rows[-1] & cols[-1])  # (Hp, Wp)
    pad = to_windows(pad[None], ws)  # (1, nW, T)
    return (pad[..., :, None] == pad[..., None, :])[:, :, None]


class ConditionalPositionEncoding(nn.Module):
    """PEG: depth-wise 3x3 convolution plus the input (per image under a
    mix mask)."""

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(embed_dims, embed_dims, 3, 1, 1,
                              groups=embed_dims)

    def forward(self, x: Tensor, hw: Tuple[int, int],
                groups: Optional[Tensor] = None) -> Tensor:
        """(B, L, C) -> (B, L, C); ``groups`` (M, H, W) of the tokens."""
        feat = nlc_to_nchw(x, hw)
        return nchw_to_nlc(group_conv(self.proj, feat, groups, groups) + feat)


class LocallyGroupedSelfAttention(nn.Module):
    """Attention inside ``ws x ws`` windows (mmseg's LSA: windows from the
    top-left, bottom and right padded with zeros)."""

    def __init__(self, embed_dims: int, num_heads: int, window_size: int,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor, hw: Tuple[int, int],
                same_image: Optional[Tensor] = None) -> Tensor:
        """(B, L, C) -> (B, L, C); ``same_image`` (M, nW, 1, T, T) bool."""
        b, _, c = x.shape
        (h, w), ws, nh = hw, self.window_size, self.num_heads
        hp, wp = padded_size(hw, ws)
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, wp - w, 0, hp - h))
        x = window_partition(x, (ws, ws))  # (B, nW, T, C)
        nw, t = x.shape[1:3]
        q, k, v = self.qkv(x).view(b * nw, t, 3, nh, c // nh).permute(
            2, 0, 3, 1, 4)  # (B*nW, nH, T, Dh) each
        mask = lsa_padding_mask(hw, ws, x.device)  # (1, nW, 1, T, T)
        if same_image is not None:
            mask = same_image if mask is None else mask & same_image
        if mask is not None:  # -> (B*nW, 1, T, T)
            mask = mask.expand(b, -1, -1, -1, -1).reshape(b * nw, 1, t, t)
        out = F.scaled_dot_product_attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(b, nw, t, c)
        out = window_reverse(out, (ws, ws), (hp, wp))  # (B, Hp, Wp, C)
        # padding cut by a copy, also where there is none: one memory
        # layout for all sizes (dynamic shapes guard on a view's layout)
        out = out.narrow(1, 0, h).narrow(2, 0, w).clone(
            memory_format=torch.contiguous_format)
        return self.proj(out.view(b, h * w, c))


class TwinsFFN(nn.Module):
    """mmcv's ``FFN`` with two layers (keys ``layers.0.0``, ``layers.1``)."""

    def __init__(self, embed_dims: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU()),
            nn.Linear(hidden, embed_dims))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class TwinsEncoderLayer(nn.Module):
    """Pre-norm block: GSA (``sr_ratio``) or LSA (``window_size``)
    attention, then the FFN.

    mmseg applies stochastic depth twice per branch (inside its attention
    and FFN modules and again in the layer); here once, as PVTv2 and Swin:
    it only acts in training, and an exported encoder fine-tunes with
    mmseg's own."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: int,
                 sr_ratio: int = 1, window_size: Optional[int] = None,
                 qkv_bias: bool = True, drop_path: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=EPS)
        if window_size is None:
            self.attn = SpatialReductionAttention(
                embed_dims, num_heads, sr_ratio, qkv_bias, norm_eps=EPS)
        else:
            self.attn = LocallyGroupedSelfAttention(embed_dims, num_heads,
                                                    window_size, qkv_bias)
        self.norm2 = nn.LayerNorm(embed_dims, eps=EPS)
        self.ffn = TwinsFFN(embed_dims, mlp_ratio * embed_dims)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    @property
    def is_lsa(self) -> bool:
        return isinstance(self.attn, LocallyGroupedSelfAttention)

    def forward(self, x: Tensor, hw: Tuple[int, int],
                groups: StageGroups) -> Tensor:
        """(B, L, C) -> (B, L, C)."""
        mask = groups.lsa_mask if self.is_lsa else groups.gsa_mask
        x = x + self.drop_path(self.attn(self.norm1(x), hw, mask))
        return x + self.drop_path(self.ffn(self.norm2(x)))


@MODELS.register_module()
class MixMAETwins(MixMAEEncoder):
    """Twins encoder for MixMAE: mmseg's ``PCPVT`` / ``SVT`` without a mix
    mask; with one, no information crosses between the two mixed images
    (module docstring).

    Args:
        arch (str | dict): 'pcpvt-s', 'pcpvt-b', 'pcpvt-l', 'svt-s',
            'svt-b', 'svt-l' (mmseg's ADE20K configs), or a dict with
            ``embed_dims``, ``num_heads``, ``mlp_ratios``, ``depths`` (4
            entries each) and ``window_sizes`` (4 entries: SVT, LSA in the
            even blocks of each stage; None: PCPVT).
        in_channels (int): Image channels. Defaults to 3.
        sr_ratios (Sequence[int]): GSA key reduction per stage. Defaults to
            (8, 4, 2, 1); with a mix mask, ``stride * sr`` must divide 32.
        qkv_bias (bool): Bias in q, k, v. Defaults to True (mmseg's
            configs).
        norm_after_stage (bool, optional): A LayerNorm closing each stage
            (``norm_list``). None: as mmseg's configs (SVT True, PCPVT
            False).
        drop_path_rate (float): Stochastic depth, linear over blocks.
            Defaults to 0 (MixMAE pretrains without it).
        out_indices (Sequence[int]): Stages returned. Defaults to (3, ),
            what MixMAE needs; dense fine-tuning uses (0, 1, 2, 3).
        init_cfg (dict, optional): ``type='Pretrained'`` (``checkpoint``,
            optional ``prefix``, ``strict``) loads mmseg-layout weights
            strictly; otherwise mmseg's random init.
    """
    _pcpvt = dict(embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8],
                  mlp_ratios=[8, 8, 4, 4], window_sizes=None)
    _svt = dict(mlp_ratios=[4, 4, 4, 4], window_sizes=[7, 7, 7, 7])
    arch_zoo = {
        'pcpvt-s': dict(_pcpvt, depths=[3, 4, 6, 3]),
        'pcpvt-b': dict(_pcpvt, depths=[3, 4, 18, 3]),
        'pcpvt-l': dict(_pcpvt, depths=[3, 8, 27, 3]),
        'svt-s': dict(_svt, embed_dims=[64, 128, 256, 512],
                      num_heads=[2, 4, 8, 16], depths=[2, 2, 10, 4]),
        'svt-b': dict(_svt, embed_dims=[96, 192, 384, 768],
                      num_heads=[3, 6, 12, 24], depths=[2, 2, 18, 2]),
        'svt-l': dict(_svt, embed_dims=[128, 256, 512, 1024],
                      num_heads=[4, 8, 16, 32], depths=[2, 2, 18, 2]),
    }
    arch_keys = ('embed_dims', 'num_heads', 'mlp_ratios', 'depths',
                 'window_sizes')
    #: Patch embedding strides (= kernels) of the 4 stages.
    strides = (4, 2, 2, 2)

    def __init__(self,
                 arch: Union[str, dict] = 'svt-b',
                 in_channels: int = 3,
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 qkv_bias: bool = True,
                 norm_after_stage: Optional[bool] = None,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (3, ),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        settings = self._parse_arch(arch)
        self.num_features = list(settings['embed_dims'])
        self.num_heads = list(settings['num_heads'])
        self.mlp_ratios = list(settings['mlp_ratios'])
        self.depths = list(settings['depths'])
        windows = settings['window_sizes']
        self.window_sizes = None if windows is None else list(windows)
        self.sr_ratios = list(sr_ratios)
        if len(self.sr_ratios) != 4:
            raise ValueError(f'Twins has 4 stages: sr_ratios needs 4 '
                             f'entries, got {self.sr_ratios}')
        if norm_after_stage is None:
            norm_after_stage = self.window_sizes is not None
        self.norm_after_stage = norm_after_stage
        self.out_strides = [math.prod(self.strides[:i + 1]) for i in range(4)]
        self.out_indices = self.parse_out_indices(out_indices)

        # registered (``layers`` before ``position_encodings``: the key
        # order) and built (embeddings, PEGs, GSA blocks, then SVT's LSA
        # blocks replacing the even ones) in mmseg's order, so a seed gives
        # mmseg's initial weights
        dims = self.num_features
        self.patch_embeds = nn.ModuleList([
            PatchEmbed(in_channels if i == 0 else dims[i - 1], dims[i], s,
                       s, eps=EPS, pad_corner=True)
            for i, s in enumerate(self.strides)
        ])
        self.layers = nn.ModuleList()
        self.position_encodings = nn.ModuleList(
            [ConditionalPositionEncoding(d) for d in dims])
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths),
                             device='cpu').tolist()
        for k, depth in enumerate(self.depths):
            start = sum(self.depths[:k])
            self.layers.append(nn.ModuleList([
                TwinsEncoderLayer(dims[k], self.num_heads[k],
                                  self.mlp_ratios[k], self.sr_ratios[k],
                                  None, qkv_bias, dpr[start + j])
                for j in range(depth)
            ]))
        if self.window_sizes is not None:
            for k, depth in enumerate(self.depths):
                start = sum(self.depths[:k])
                for j in range(0, depth, 2):
                    self.layers[k][j] = TwinsEncoderLayer(
                        dims[k], self.num_heads[k], self.mlp_ratios[k],
                        window_size=self.window_sizes[k], qkv_bias=qkv_bias,
                        drop_path=dpr[start + j])
        if self.norm_after_stage:
            self.norm_list = nn.ModuleList(
                [nn.LayerNorm(d, eps=EPS) for d in dims])

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown arch {arch!r}; choose one of '
                                 f'{sorted(self.arch_zoo)} or pass a dict')
            return self.arch_zoo[arch.lower()]
        if not isinstance(arch, dict) or set(arch) != set(self.arch_keys):
            raise ValueError(f'a custom arch must be a dict with the keys '
                             f'{list(self.arch_keys)}; got {arch!r}')
        for key in self.arch_keys:
            if not (key == 'window_sizes' and arch[key] is None) and \
                    len(arch[key]) != 4:
                raise ValueError(f'Twins has 4 stages: {key} needs 4 '
                                 f'entries, got {arch[key]}')
        return arch

    def init_random(self) -> None:
        """mmseg's init (:func:`pvt_init`); ``init_weights`` then loads
        ``Pretrained``."""
        pvt_init(self)

    def layer_id(self, name: str) -> Optional[int]:
        """Layer ids (:meth:`MixMAEEncoder.get_layer_depth`): the patch
        embedding of stage s > 0 and the PEG of stage s (it follows block 0)
        with the stage's first block, the norm closing stage s with its
        last block."""
        parts = name.split('.')
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        stage = int(parts[1])
        if parts[0] == 'patch_embeds':
            return self.block_id(stage, 0) if stage else 0
        if parts[0] == 'position_encodings':
            return self.block_id(stage, 0)
        if parts[0] == 'layers':
            return self.block_id(stage, int(parts[2]))
        if parts[0] == 'norm_list':
            return sum(self.depths[:stage + 1])
        return None

    def check_masked_arch(self) -> None:
        """Every GSA key must lie in one 32-px square."""
        self.check_key_windows(self.sr_ratios, 'GSA reduction')

    def image_groups(self,
                     mix_mask: Tensor,
                     x: Tensor,
                     num_partner: Optional[int] = None) -> List[StageGroups]:
        """Per stage, the image groups and attention masks of a mix mask
        (M, H/32, W/32) for the images ``x`` (B, C, H, W). Shapes depend on
        the image size only, never on the mask's values."""
        mask = self.mask_on_device(mix_mask, x, num_partner)
        groups = []
        for i, (stride, sr) in enumerate(zip(self.out_strides,
                                             self.sr_ratios)):
            tokens = self.groups_at(mask, stride)  # (M, H, W)
            keys = self.groups_at(mask, stride * sr)
            lsa = None
            if self.window_sizes is not None:
                lsa = self._lsa_same_image(tokens, self.window_sizes[i])
            groups.append(StageGroups(
                tokens, same_image_key_mask(tokens, keys), lsa))
        return groups

    @staticmethod
    def _lsa_same_image(tokens: Tensor, ws: int) -> Tensor:
        """(M, H, W) groups -> (M, nW, 1, T, T), True where two tokens of a
        window belong to the same image. Padding (zeros, no image's
        content) belongs to both: mmseg's padding mask decides for it."""
        h, w = tokens.shape[1:]
        g = F.pad(tokens.long(), (0, (-w) % ws, 0, (-h) % ws), value=2)
        g = to_windows(g, ws)  # (M, nW, T)
        gi, gj = g[..., :, None], g[..., None, :]
        return ((gi == gj) | (gi == 2) | (gj == 2))[:, :, None]

    def forward(self,
                x: Tensor,
                mix_mask: Optional[Tensor] = None,
                num_partner: Optional[int] = None) -> Tuple[Tensor, ...]:
        """Images (B, C, H, W) -> one map (B, C_i, H_i, W_i) per entry of
        ``out_indices`` (mmseg's sizes, ceil(H / s_i)).

        With ``mix_mask``, bool (M, H/32, W/32), M in {1, B}, True where
        the square comes from the partner ``x.flip(0)``: ``x`` is mixed and
        H, W are multiples of 32; ``num_partner``, where the caller knows
        it, the squares each mask gives to the partner (checked, see
        :meth:`check_partner_count`). Without: any size mmseg takes."""
        stage_groups = [StageGroups()] * 4
        if mix_mask is not None:
            stage_groups = self.image_groups(mix_mask, x, num_partner)
        outs = []
        for i, groups in enumerate(stage_groups):
            x, hw = self.patch_embeds[i](x)  # (B, L, C_i)
            for j, block in enumerate(self.layers[i]):
                x = block(x, hw, groups)
                if j == 0:
                    x = self.position_encodings[i](x, hw, groups.tokens)
            if self.norm_after_stage:
                x = self.norm_list[i](x)
            x = nlc_to_nchw(x, hw)  # (B, C_i, H_i, W_i)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


__all__ = ['MixMAETwins', 'lsa_padding_mask']
