# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""What every MixMAE encoder shares: the mix grid and its checks, each
stage's image groups, layer ids for layer-wise lr decay and the
``Pretrained`` init. A family subclasses :class:`MixMAEEncoder`, builds its
stages, sets ``num_features``, ``out_strides``, ``depths`` and
``out_indices`` and implements ``init_random``, ``layer_id`` and
``forward(x, mix_mask=None)``.
"""
from typing import List, Optional, Sequence, Tuple

import math

import torch
from mmengine.model import (BaseModule, constant_init, normal_init,
                            trunc_normal_init)
from torch import Tensor, nn

from ..layers.mixing import check_divisible, resample_mask
from ..utils.pretrained import load_pretrained_encoder


def is_pretrained(init_cfg) -> bool:
    """Whether ``init_cfg`` asks for a checkpoint load (``Pretrained``)."""
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def pvt_init(module: nn.Module) -> None:
    """The random init of mmdet's PVTv2 and mmseg's Twins: truncated-normal
    Linear (std .02), unit LayerNorm, He-normal convolutions by fan-out,
    zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_init(m, std=.02, bias=0.)
        elif isinstance(m, nn.LayerNorm):
            constant_init(m, 1.0, bias=0.)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * \
                m.out_channels // m.groups
            normal_init(m, 0, math.sqrt(2.0 / fan_out), bias=0.)


class MixMAEEncoder(BaseModule):
    """Base class of the MixMAE encoders (module docstring)."""
    #: Side in pixels of the squares the two images are mixed on: the
    #: stride of the mix mask's grid.
    mix_grid = 32
    #: The former name of :attr:`mix_grid` (the preprocessor's
    #: ``mix_stride`` is the grid the mask is drawn on, another thing).
    mix_stride = property(lambda self: self.mix_grid)
    num_features: List[int]
    out_strides: List[int]
    depths: List[int]
    out_indices: Tuple[int, ...]

    @staticmethod
    def parse_out_indices(out_indices: Sequence[int],
                          num_stages: int = 4) -> Tuple[int, ...]:
        """Negative indices counted from the end; out of range refused."""
        out = [i + num_stages if i < 0 else i for i in out_indices]
        if not all(0 <= i < num_stages for i in out):
            raise ValueError(f'out_indices must lie in [0, {num_stages}), '
                             f'got {tuple(out_indices)}')
        return tuple(out)

    # -- initialisation ------------------------------------------------------
    def init_random(self) -> None:
        """The family's own random init (all parameters)."""
        raise NotImplementedError

    def init_weights(self) -> None:
        """The family's random init, then a strict load for ``Pretrained``
        (keys the checkpoint lacks keep the random init)."""
        self.init_random()
        if is_pretrained(self.init_cfg):
            load_pretrained_encoder(self, self.init_cfg)
        elif self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    # -- layer-wise lr decay -------------------------------------------------
    def layer_id(self, name: str) -> Optional[int]:
        """Layer id of an encoder parameter ``name`` (no prefix); None for
        parameters grouped with the last block."""
        raise NotImplementedError

    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """``(layer_id, sum(depths) + 2)`` for mmpretrain's layer-wise lr
        decay: the stem 0, block j of stage s ``sum(depths[:s]) + j + 1``
        (each family says where its other parameters go, :meth:`layer_id`),
        anything else, neck and head included, ``sum(depths)``: the last
        block's id. The lr scale is then ``decay ** (num_layers - id - 1)``.
        """
        num_layers = sum(self.depths) + 2
        layer = None
        if param_name.startswith(prefix):
            layer = self.layer_id(param_name[len(prefix):])
        return (num_layers - 2 if layer is None else layer), num_layers

    def block_id(self, stage: int, block: int) -> int:
        """Layer id of block ``block`` of stage ``stage``."""
        return sum(self.depths[:stage]) + block + 1

    # -- the mix mask --------------------------------------------------------
    def mask_grids(self) -> Tuple[int, ...]:
        """Grids (strides in pixels) a mix mask may be given on: the mix
        grid only (a reduced key or a convolution spans a square); Swin's
        windows also take the stage grids (the fine-mask ablation)."""
        return (self.mix_grid, )

    def check_mix_mask(self, mix_mask: Tensor, batch_size: int,
                       size: Tuple[int, int]) -> int:
        """Refuse what a masked forward cannot keep apart: image sides not
        multiples of the mix grid, masks on none of :meth:`mask_grids`,
        and whatever :meth:`check_masked_arch` refuses (shapes only,
        nothing is read from the device).

        Returns:
            int: The stride of the mask's grid (:attr:`mix_grid` unless
            the family takes finer masks).
        """
        h, w = size
        check_divisible((h, w), self.mix_grid, 'Mixed images')
        self.check_masked_arch()
        grids = self.mask_grids()
        found = [s for s in grids if mix_mask.dim() == 3 and
                 tuple(mix_mask.shape[1:]) == (h // s, w // s)]
        if found and mix_mask.shape[0] in (1, batch_size):
            return found[0]
        if len(grids) == 1:
            g = (h // grids[0], w // grids[0])
            raise ValueError(
                f'mix_mask must have shape (1 or {batch_size}, {g[0]}, '
                f'{g[1]}), the stride-{grids[0]} grid of {h}x{w} images (a '
                f'reduced key spans a square: no finer masks), got '
                f'{tuple(mix_mask.shape)}')
        allowed = ', '.join(f'{(h // s, w // s)} (stride {s})' for s in grids)
        raise ValueError(
            f'mix_mask must have shape (1 or {batch_size}, h, w) with (h, w) '
            f'one of {allowed} for images of size {(h, w)}, got '
            f'{tuple(mix_mask.shape)}')

    def check_masked_arch(self) -> None:
        """Refuse an arch that cannot keep the images apart (raise
        ValueError); nothing by default."""

    def check_key_windows(self, sr_ratios: Sequence[int],
                          what: str = 'spatial-reduction') -> None:
        """Reduced-key attention keeps the images apart only if every key
        window (stage stride x sr pixels) lies in one square."""
        windows = [s * r for s, r in zip(self.out_strides, sr_ratios)]
        if any(self.mix_grid % px for px in windows):
            raise ValueError(
                f'a masked forward needs {what} windows (stride x sr_ratio '
                f'px) that tile the {self.mix_grid}-px squares; sr_ratios '
                f'{list(sr_ratios)} give windows of {windows} px')

    def check_partner_count(self, mix_mask: Tensor,
                            num_partner: Optional[int]) -> None:
        """Where a caller states it, every mask must give ``num_partner``
        squares to the partner (a layout sized by the count would otherwise
        put both images in one cell). Checked where the mask lives without
        the host waiting: at once for a CPU mask, as a device assertion
        under CUDA (and inside compiled graphs)."""
        if num_partner is None:
            return
        counts = mix_mask.flatten(1).sum(1)  # (M,)
        torch._assert_async(
            (counts == num_partner).all(),
            f'mix_mask: every mask must give num_partner={num_partner} '
            f'squares of its {tuple(mix_mask.shape[1:])} grid to the '
            f'partner (MixMAE states the fixed count of its data '
            f'preprocessor); draw masks with sample_mix_mask at its '
            f'mask_ratio, or state no count (num_partner=None)')

    def mask_on_device(self,
                       mix_mask: Tensor,
                       x: Tensor,
                       num_partner: Optional[int] = None) -> Tensor:
        """``mix_mask`` checked against the images ``x`` (B, C, H, W)
        (:meth:`check_mix_mask`, :meth:`check_partner_count`) and copied to
        their device as bool, once: every stage's grid is derived there
        (:meth:`groups_at`)."""
        self.check_mix_mask(mix_mask, x.shape[0], x.shape[-2:])
        self.check_partner_count(mix_mask, num_partner)
        return mix_mask.to(x.device, torch.bool, non_blocking=True)

    def groups_at(self, mask: Tensor, stride: int,
                  mask_grid: Optional[int] = None) -> Tensor:
        """Image groups (True: partner) on the grid of ``stride`` pixels,
        bool (M, H/stride, W/stride), from a mask on the grid of
        ``mask_grid`` pixels (default :attr:`mix_grid`): shapes depend on
        the image size only, never on the mask's values."""
        return resample_mask(mask, mask_grid or self.mix_grid, stride)


__all__ = ['MixMAEEncoder', 'is_pretrained', 'pvt_init']
