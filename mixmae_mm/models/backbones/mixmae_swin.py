# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
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
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.drop import DropPath
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ...utils.torch_compat import is_compiling, untraced
from ..layers.dense_windows import (DenseWindows, dense_windows,
                                    padded_size, use_static_shapes)
from ..layers.pos_embed import sincos_pos_embed_2d
from ..layers.token_layout import (TokenLayout, layouts_to, plain_layout,
                                   plan_token_layout, split_window_layout)
from ..layers.transformer import Mlp
from ..layers.window_attention import WindowAttention
from ..utils.pretrained import filter_encoder_state_dict_
from ..utils.shape_cache import ShapeCache
from .base_encoder import MixMAEEncoder


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
    """Pre-norm window-attention block (no shift) on the tokens of a stage,
    kept in the stage's :class:`TokenLayout` order.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads nH.
        window_size (tuple[int, int]): Nominal window (of the bias table).
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
        qkv_bias (bool): Bias in qkv. Defaults to True.
        drop_path (float): Stochastic depth rate. Defaults to 0.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: Tuple[int, int],
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowAttention(embed_dims, num_heads, window_size,
                                    qkv_bias)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: Tensor, layout: TokenLayout) -> Tensor:
        """
        Args:
            x (Tensor): Tokens in layout order, shape (B, L, C).
            layout (TokenLayout): The stage's cells (windows, or window
                parts of one image under a mix mask).

        Returns:
            Tensor: Shape (B, L, C).
        """
        # residuals added in place to the fresh branch outputs (the layers
        # that made them keep no output for backward)
        x = self.drop_path(self.attn(self.norm1(x), layout)).add_(x)
        return self.drop_path(self.mlp(self.norm2(x))).add_(x)


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
        with_cp (bool): Recompute each block's activations in the backward
            pass (activation checkpointing). Defaults to False.
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
        self.with_cp = with_cp
        drop_paths = list(drop_paths) or [0.] * depth
        self.blocks = nn.ModuleList([
            MixMAEBlock(embed_dims, num_heads, self.window_size, mlp_ratio,
                        qkv_bias, drop_paths[j]) for j in range(depth)
        ])
        self.downsample = PatchMerging(embed_dims) if downsample else None

    def clamped_window(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        """The window on a map of size ``hw``: the nominal one, clamped per
        side to the map (a small map gets global attention)."""
        (h, w), (wh, ww) = hw, self.window_size
        # comparisons, not min(): under dynamic shapes a guard on the size
        # range keeps the window a constant
        return wh if h >= wh else h, ww if w >= ww else w

    def forward(self,
                x: Tensor,
                layout: Union[TokenLayout, DenseWindows, None] = None
                ) -> Tuple[Tensor, Tensor]:
        """
        Args:
            x (Tensor): Tokens, shape (B, H, W, C).
            layout (TokenLayout | DenseWindows, optional): The stage's
                cells on the device of ``x``, cut by the image groups of a
                mix mask (see :meth:`MixMAESwin.plan_layouts`), or its
                masked dense windows (:meth:`MixMAESwin.dense_layouts`).
                None: plain window attention.

        Returns:
            tuple[Tensor, Tensor]: The stage output (B, H, W, C) and the
            input of the next stage (B, H/2, W/2, 2C), which is the same
            tensor when there is no downsample.
        """
        h, w = map(int, x.shape[1:3])  # under tracing, sizes are tensors
        if layout is None and use_static_shapes(x):
            # shape-only tensor ops: traced into a compiled graph as well
            layout = dense_windows((h, w), self.clamped_window((h, w)),
                                   self.window_size, device=x.device)
        elif layout is None:
            # depends on shapes only: built once, then cached
            layout = plain_layout((h, w), self.clamped_window((h, w)),
                                  self.window_size, x.device)
        elif tuple(layout.hw) != (h, w):
            raise ValueError(f'the layout is for a {tuple(layout.hw)} map, '
                             f'the stage got {(h, w)}')
        # tokens reordered cell by cell (or window by window) once per
        # stage; cells cut overhanging windows, dense windows pad them
        x = layout.to_tokens(x)  # (B, L, C)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, layout, use_reentrant=False)
            else:
                x = block(x, layout)  # (B, L, C)
        x = layout.to_map(x)  # (B, H, W, C)
        out = x
        if self.downsample is not None:
            x = self.downsample(x)
        return out, x


@MODELS.register_module()
class MixMAESwin(MixMAEEncoder):
    """MixMAE encoder: a hierarchical ViT with non-shifted windows.

    With a mix mask it runs masked self-attention at every stage (a token
    attends only to tokens of its own image, `MixMAE
    <https://arxiv.org/abs/2205.13137>`_); without one it is the plain
    encoder used for classification, detection and segmentation.

    Two attention paths compute the same function, chosen per forward by
    :func:`~mixmae_mm.models.layers.dense_windows.use_static_shapes`:
    eager on the CPU, cells of one image planned on the host, once per
    batch for a mix mask (:meth:`plan_layouts`) and once per input size
    without one (the fewest FLOPs); compiled or on a GPU, dense windows
    with a "same image" mask (:meth:`dense_layouts`), whose shapes never
    depend on the mask, so one compiled graph (or CUDA graph) serves every
    batch and nothing waits for the device.

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
        frozen_stages (int): Stages to freeze (no gradient, eval mode):
            -1 none, 0 the patch embedding, k >= 1 also stages 0..k-1 with
            their patch merging and output norms. Defaults to -1.
        with_cp (bool | Sequence[int]): Activation checkpointing per
            block: True for every stage, or the indices of the stages whose
            blocks recompute their activations in the backward pass (the
            early stages hold the most activations per FLOP).
            Defaults to False.
        pretrained (str, optional): Deprecated, use ``init_cfg`` (accepted
            because mmseg's ``EncoderDecoder`` injects it).
        init_cfg (dict, optional): Initialisation config. With
            ``type='Pretrained'`` (``checkpoint``, optional ``prefix``) the
            weights are loaded strictly: missing, unexpected or mis-shaped
            keys raise an error listing them, except output norms that the
            checkpoint does not have (new for dense use, freshly
            initialised, reported). ``strict=False`` in it only warns.

    Checkpoints load through any path (``init_cfg``, ``load_from``,
    ``load_state_dict``) with a pre-hook that applies
    :func:`~mixmae_mm.models.utils.ckpt_convert.filter_encoder_state_dict`:
    derived tensors (``relative_position_index``, ``absolute_pos_embed``,
    ``attn_mask``) and pretraining-only keys this encoder lacks
    (``mask_token``) are dropped, and every relative position bias table
    is resized by bicubic interpolation when the window differs.
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

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 window_size: Sequence[int] = (14, 14, 14, 7),
                 in_channels: int = 3,
                 patch_size: int = 4,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (3, ),
                 frozen_stages: int = -1,
                 with_cp: Union[bool, Sequence[int]] = False,
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
        if patch_size * 2**(num_stages - 1) != self.mix_grid:
            raise ValueError(
                f'patch_size {patch_size} with {num_stages} stages gives a '
                f'last-stage stride of {patch_size * 2**(num_stages - 1)}; '
                f'MixMAE mixes on a stride-{self.mix_grid} grid')
        self.depths = depths
        self.out_indices = self.parse_out_indices(out_indices, num_stages)
        self.patch_size = patch_size
        self.window_size = [(w, w) if isinstance(w, int) else tuple(w)
                            for w in window_size]
        self.num_features = [self.embed_dims * 2**i for i in range(num_stages)]
        self.out_strides = [patch_size * 2**i for i in range(num_stages)]

        if isinstance(with_cp, bool):
            cp_stages = set(range(num_stages)) if with_cp else set()
        else:
            cp_stages = {i + num_stages if i < 0 else i for i in with_cp}
            if not cp_stages <= set(range(num_stages)):
                raise ValueError(f'with_cp must be a bool or stage indices '
                                 f'in [0, {num_stages}), got {with_cp}')
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
                    with_cp=i in cp_stages))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        # one table per input size: bounded, mmdet pads each batch its own
        self._pos_cache = ShapeCache(name='MixMAESwin.pos_embed')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must lie in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self._freeze_stages()
        self._register_load_state_dict_pre_hook(self._prepare_state_dict)

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise ValueError(f'unknown arch {arch!r}; choose one of '
                                 f'{sorted(set(self.arch_zoo))} or pass a '
                                 f'dict with keys '
                                 f'{sorted(self.essential_keys)}')
            return dict(self.arch_zoo[key])
        if not isinstance(arch, dict) or not self.essential_keys <= set(arch):
            raise ValueError(f'a custom arch must be a dict with keys '
                             f'{sorted(self.essential_keys)}, got {arch!r}')
        if len(arch['depths']) != len(arch['num_heads']):
            raise ValueError(f'depths {arch["depths"]} and num_heads '
                             f'{arch["num_heads"]} differ in length')
        return dict(arch)

    def init_random(self) -> None:
        """Official init (xavier-uniform Linear, unit LayerNorm);
        ``init_weights`` then loads ``Pretrained`` strictly."""
        self.apply(_init_official)

    def _prepare_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Load pre-hook: adapts the checkpoint in place with
        :func:`~mixmae_mm.models.utils.ckpt_convert.filter_encoder_state_dict`
        (derived tensors and pretraining-only keys this encoder lacks
        dropped, bias tables resized to its windows)."""
        filter_encoder_state_dict_(self, state_dict, prefix)

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MixMAESwin':
        """Keep frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def layer_id(self, name: str) -> Optional[int]:
        """Layer ids (:meth:`MixMAEEncoder.get_layer_depth`), official
        MixMIM grouping (``get_layer_id_for_mixmim``): the stem
        (``patch_embed``) 0, the patch merging after stage s with the first
        block of stage s+1, output norms with the last block."""
        if name.startswith(('patch_embed', 'absolute_pos_embed')):
            return 0
        if not name.startswith('layers.'):
            return None
        parts = name.split('.')
        stage = int(parts[1])
        if parts[2] == 'downsample':
            return self.block_id(stage + 1, 0)
        return self.block_id(stage, int(parts[3]))

    def pos_embed(self, grid: Tuple[int, int], x: Tensor) -> Tensor:
        """Fixed sin-cos absolute position embedding (1, H, W, C) for the
        stage-1 grid (computed per grid; the recent ones are kept up to
        the cache's byte budget)."""
        if is_compiling():
            # in the graph (sin/cos of H + W rows): the grid may be
            # symbolic (dynamic shapes); the cache is bypassed under
            # compile anyway, and int() / untraced() are for tracing only
            return sincos_pos_embed_2d(self.embed_dims, grid, x.device,
                                       x.dtype).view(1, *grid, -1)
        grid = tuple(map(int, grid))  # under tracing, sizes are tensors
        key = (grid, x.device, x.dtype)
        table = self._pos_cache.get(key)
        if table is None:
            # a constant of a trace, whether the cache holds it or not
            with untraced():
                table = sincos_pos_embed_2d(self.embed_dims, grid, x.device,
                                            x.dtype).view(1, *grid, -1)
            self._pos_cache.put(key, table)
        return table

    def forward(self,
                x: Tensor,
                mix_mask: Optional[Tensor] = None,
                num_partner: Optional[int] = None) -> Tuple[Tensor, ...]:
        """
        Args:
            x (Tensor): Images (B, 3, H, W). With a mix mask they are already
                mixed (see :func:`~mixmae_mm.models.layers.mixing.mix_images`)
                and H, W must be multiples of 32; without one any size works
                (padded to 32, outputs cropped back).
            mix_mask (Tensor, optional): Bool (M, H/32, W/32), M in {1, B}.
                Enables masked self-attention: tokens attend only within
                their own image. A mask on a finer stage grid (e.g.
                (M, H/4, W/4), the fine-mask ablation) is accepted too; at
                coarser stages the top-left token of each merged group
                decides its image (see
                :func:`~mixmae_mm.models.layers.mixing.resample_mask`).
                Best on the CPU (as :class:`MixMAEDataPreprocessor` gives
                it): on the cells path a mask on the device is read back
                once, see :meth:`plan_layouts`; the static path copies it
                to the device (:meth:`dense_layouts`).
            num_partner (int, optional): Squares each mask gives to the
                partner, where the caller knows it (MixMAE: its data
                preprocessor's fixed count); checked. On the static path a
                stage whose window covers the map then splits it into the
                two images' cells (static sizes, see
                :func:`~mixmae_mm.models.layers.token_layout.split_window_layout`).

        Returns:
            tuple[Tensor]: One map (B, C_i, ceil(H/s_i), ceil(W/s_i)) per
            entry of ``out_indices``, with s_i the stage stride.
        """
        # under tracing, sizes are tensors (constants of the trace here:
        # ONNX divides integers towards zero, not as Python's //)
        b, _, h, w = map(int, x.shape)
        layouts = None
        if mix_mask is not None and use_static_shapes(x):
            layouts = self.dense_layouts(mix_mask, (h, w), x.device, b,
                                         num_partner)
        elif mix_mask is not None:
            layouts = self.plan_layouts(mix_mask, (h, w), x.device, b,
                                        num_partner)
        else:
            hp, wp = padded_size((h, w), self.mix_grid)  # whole squares
            x = F.pad(x, (0, wp - w, 0, hp - h))
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        return self.forward_stages(x, (h, w), layouts)

    def mask_grids(self) -> Tuple[int, ...]:
        """A mix mask may come on any stage grid, coarsest first: windows
        are cut per token, so finer masks (the fine-mask ablation) keep the
        images apart too."""
        return tuple(reversed(self.out_strides))

    def plan_layouts(self,
                     mix_mask: Tensor,
                     size: Tuple[int, int],
                     device=None,
                     batch_size: Optional[int] = None,
                     num_partner: Optional[int] = None
                     ) -> Tuple[TokenLayout, ...]:
        """The token layouts of all stages for one mix mask: where masked
        self-attention is set up, and the one place per batch where the
        encoder reads values into Python.

        At every stage the mask, resampled to the stage grid, gives each
        token its *image group* (0: the sample's own image, 1: the
        partner's); the stage's cells are its windows cut into the parts of
        one group, so attention within a cell never crosses images. Cell
        sizes depend on the mask: they are planned on the host from a CPU
        mask and all stages' tensors then reach ``device`` in one
        non-blocking copy, so no stage and no block makes the host wait for
        the device. A mask on an accelerator is copied to the host first,
        which waits for the device once: pass the CPU mask where there is
        one.

        Args:
            mix_mask (Tensor): Bool (M, h, w), as in :meth:`forward`.
            size (tuple[int, int]): Size (H, W) of the mixed images,
                multiples of 32.
            device (torch.device | str, optional): Where the stages run.
                Defaults to the device of ``mix_mask``.
            batch_size (int, optional): Images in the batch, checked
                against the mask's M. Defaults to M.
            num_partner (int, optional): Squares each mask gives to the
                partner, checked where given (the cells need no count).

        Returns:
            tuple[TokenLayout]: One layout per stage, on ``device``, for
            :meth:`forward_stages`.
        """
        h, w = size
        mask_stride = self.check_mix_mask(
            mix_mask, batch_size or mix_mask.shape[0], size)
        self.check_partner_count(mix_mask, num_partner)
        device = mix_mask.device if device is None else device
        mask = mix_mask.cpu()  # a no-op for a CPU mask
        plans = []
        for stage, stride in zip(self.layers, self.out_strides):
            hw = (h // stride, w // stride)
            image_groups = self.groups_at(mask, stride,
                                          mask_stride).long()  # (M, H, W)
            plans.append(
                plan_token_layout(hw, stage.clamped_window(hw),
                                  stage.window_size, image_groups))
        return tuple(layouts_to(plans, device))

    def dense_layouts(self,
                      mix_mask: Tensor,
                      size: Tuple[int, int],
                      device=None,
                      batch_size: Optional[int] = None,
                      num_partner: Optional[int] = None
                      ) -> Tuple[Union[DenseWindows, TokenLayout], ...]:
        """The static-shape layouts of all stages for one mix mask: the
        alternative to :meth:`plan_layouts` (same arguments, same
        attention), built on ``device`` without reading any value.

        A stage keeps whole windows and masks the pairs of tokens of
        different images (and padding): dense windows, whose shapes depend
        on ``size`` and the mask's shape only. Where ``num_partner`` is
        given, the mask shared and the window covers the map, the stage
        takes the two images' cells instead, whose sizes follow from the
        count (:func:`split_window_layout`: half the logits, no mask).
        Either way one compiled graph serves every mask.

        Returns:
            tuple[DenseWindows | TokenLayout]: One layout per stage, for
            :meth:`forward_stages`.
        """
        h, w = size
        mask_stride = self.check_mix_mask(
            mix_mask, batch_size or mix_mask.shape[0], size)
        self.check_partner_count(mix_mask, num_partner)
        device = mix_mask.device if device is None else device
        # a host mask reaches the device without the host waiting
        mask = mix_mask.to(device, non_blocking=True)
        layouts = []
        for stage, stride in zip(self.layers, self.out_strides):
            hw = (h // stride, w // stride)
            window = stage.clamped_window(hw)
            groups = self.groups_at(mask, stride, mask_stride)  # (M, H, W)
            # tokens per square at this stage (none where a stage token
            # spans several squares of a finer mask)
            per_square = (mask_stride // stride)**2 \
                if mask_stride % stride == 0 else None
            if num_partner is not None and per_square and \
                    groups.shape[0] == 1 and window == hw:
                layouts.append(
                    split_window_layout(hw, stage.window_size, groups,
                                        num_partner * per_square))
            else:
                layouts.append(
                    dense_windows(hw, window, stage.window_size, groups))
        return tuple(layouts)

    def forward_stages(self,
                       x: Tensor,
                       size: Tuple[int, int],
                       layouts: Optional[Sequence[Union[
                           TokenLayout, DenseWindows]]] = None
                       ) -> Tuple[Tensor, ...]:
        """Position embedding, stages and output norms on embedded patches.

        Args:
            x (Tensor): Patch embeddings (B, H/4, W/4, C) of images padded
                to multiples of 32.
            size (tuple[int, int]): Unpadded image size (H, W).
            layouts (Sequence[TokenLayout | DenseWindows], optional): One
                per stage, from :meth:`plan_layouts` or :meth:`dense_layouts`
                (masked self-attention). None: plain window attention.

        Returns:
            tuple[Tensor]: As :meth:`forward`.
        """
        h, w = size
        x = x + self.pos_embed(x.shape[1:3], x)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x = stage(x, None if layouts is None else layouts[i])
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)  # (B, H, W, C)
                s = self.out_strides[i]
                # ceil(h / s) x ceil(w / s): the unpadded part
                out = out.narrow(1, 0, -(-h // s)).narrow(2, 0, -(-w // s))
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
