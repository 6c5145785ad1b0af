# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""MixMAE: wiring of preprocessor output, encoder, decoder and head."""
import copy
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..data_preprocessors import MixMAEDataPreprocessor
from ..layers.mixing import resample_mask
from ..utils.compile_step import CompilableTrainStep


def _derive(part: Union[dict, nn.Module], name: str, key: str, value,
            source: str) -> Union[dict, nn.Module]:
    """Fill ``part[key]`` with the value another part decides, or check the
    one a user gave.

    Args:
        part (dict | nn.Module): Config (copied, not changed in place) or
            built module of the neck or the head.
        name (str): ``'neck'`` or ``'head'``, for the error message.
        key (str): Argument (config) or attribute (module) name.
        value: The derived value.
        source (str): Where ``value`` comes from, e.g.
            ``'backbone.num_features[-1]'``, for the error message.

    Returns:
        dict | nn.Module: ``part`` with ``key`` set to ``value``.

    Raises:
        ValueError: An explicit ``key`` differs from ``value``.
    """
    if isinstance(part, nn.Module):
        given = getattr(part, key)
    else:
        part = copy.copy(part)
        given = part.setdefault(key, value)
    if given != value:
        hint = '' if isinstance(part, nn.Module) else \
            f'; leave {name}.{key} unset: MixMAE fills it in'
        raise ValueError(f'{name}.{key}={given!r} conflicts with '
                         f'{source}={value!r}{hint}')
    return part


@MODELS.register_module()
class MixMAE(CompilableTrainStep, BaseSelfSupervisor):
    """MixMAE: Mixed and Masked Autoencoder.

    Implementation of `MixMAE <https://arxiv.org/abs/2205.13137>`_. Two
    images share one random mask on the stride-32 grid; the encoder sees the
    mixed image with masked self-attention, the decoder rebuilds both.

    Args:
        backbone (dict | nn.Module): :class:`MixMAESwin` config,
            ``out_indices`` the last stage.
        neck (dict | nn.Module): :class:`MixMAEPretrainDecoder` config.
            ``in_channels`` and ``patch_size`` are filled in from the
            backbone (its last-stage width and stride).
        head (dict | nn.Module): :class:`MixMAEPretrainHead` config.
            ``patch_size`` is filled in from the backbone,
            ``dual_reconstruction`` from the neck. A filled-in key given
            explicitly must equal the derived value (ValueError otherwise).
        masked_attention (bool): Tokens attend only to tokens of their own
            image (official). False lets them attend across the two images
            (an ablation). Defaults to True.
        pretrained (str, optional): Deprecated checkpoint path.
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='MixMAEDataPreprocessor')``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 neck: Union[dict, nn.Module],
                 head: Union[dict, nn.Module],
                 masked_attention: bool = True,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='MixMAEDataPreprocessor')
        # the backbone decides the decoder's input width and the patch size
        # of decoder and head, the decoder whether the head un-mixes two
        # branches: build each part before the ones that depend on it
        if not isinstance(backbone, nn.Module):
            backbone = MODELS.build(backbone)
        last = len(backbone.num_features) - 1
        if tuple(backbone.out_indices) != (last, ):
            raise ValueError(f'MixMAE pretraining needs backbone out_indices '
                             f'=({last},), got {backbone.out_indices}')
        stride = backbone.out_strides[last]
        strides = 'backbone.out_strides[-1]'
        neck = _derive(neck, 'neck', 'in_channels',
                       backbone.num_features[last],
                       'backbone.num_features[-1]')
        neck = _derive(neck, 'neck', 'patch_size', stride, strides)
        if not isinstance(neck, nn.Module):
            neck = MODELS.build(neck)
        head = _derive(head, 'head', 'patch_size', stride, strides)
        head = _derive(head, 'head', 'dual_reconstruction',
                       neck.dual_reconstruction, 'neck.dual_reconstruction')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.masked_attention = masked_attention
        mix_stride = getattr(self.data_preprocessor, 'mix_stride', stride)
        if mix_stride not in self.backbone.out_strides:
            raise ValueError(
                f'data_preprocessor.mix_stride ({mix_stride}) must be the '
                f'encoder stride {stride} (or, for the fine-mask ablation, '
                f'another stage stride of {self.backbone.out_strides})')

    def extract_feat(self, inputs: Union[torch.Tensor, List]) -> tuple:
        """Unmasked encoder features of the clean images.

        Args:
            inputs (Tensor | list): Images (B, 3, H, W), or the
                preprocessor's ``[imgs, mixed, mix_mask]``.

        Returns:
            tuple[Tensor]: Backbone outputs, (B, C, H/32, W/32) each.
        """
        imgs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return self.backbone(imgs)

    def _encode_decode(self, mixed: torch.Tensor,
                       mix_mask: torch.Tensor) -> tuple:
        """Encoder and decoder on mixed images.

        Args:
            mixed (Tensor): Mixed images (B, 3, H, W).
            mix_mask (Tensor): Bool (M, h, w), best on the CPU as the
                preprocessor gives it (the encoder plans its layouts from
                it on the host).

        Returns:
            tuple[Tensor, Tensor]: Decoder output (2B or B, L, P*P*3) and
            the mask on the encoder-stride grid (M, h, w), on the device of
            ``mixed``.
        """
        if self.masked_attention:
            latent = self.backbone(mixed, mix_mask,
                                   self._partner_count(mix_mask))[-1]
        else:
            latent = self.backbone(mixed)[-1]
        stride = self.backbone.out_strides[-1]
        mask_stride = mixed.shape[-1] // mix_mask.shape[-1]
        coarse = resample_mask(mix_mask, mask_stride, stride)  # (M, h, w)
        # one copy for the decoder and the loss (a no-op for a device mask)
        coarse = coarse.to(latent.device, non_blocking=True)
        return self.neck(latent, coarse), coarse

    def _partner_count(self, mix_mask: torch.Tensor) -> Optional[int]:
        """The squares every mask gives to the partner where this model's
        data preprocessor fixes it (the encoder checks it and sizes static
        per-image cells by it), else None."""
        if not isinstance(self.data_preprocessor, MixMAEDataPreprocessor):
            return None
        return self.data_preprocessor.partner_count(
            tuple(mix_mask.shape[1:]))

    def reconstruct(self, inputs: List) -> torch.Tensor:
        """Un-mixed predictions (B, L, 32*32*3) of both images, for
        visualisation."""
        _, mixed, mix_mask = inputs
        pred, coarse = self._encode_decode(mixed, mix_mask)
        return self.head.predict(pred, coarse)

    def loss(self, inputs: List, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """
        Args:
            inputs (list): ``[imgs, mixed, mix_mask]`` from
                :class:`MixMAEDataPreprocessor` (the mask on the CPU; a
                device mask works too, read back once by the encoder). A
                mask made elsewhere must give the partner the squares the
                preprocessor's masks give (``partner_count``; checked).
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss``.
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise TypeError('MixMAE.loss expects [imgs, mixed, mix_mask] '
                            'from MixMAEDataPreprocessor')
        imgs, mixed, mix_mask = inputs
        pred, coarse = self._encode_decode(mixed, mix_mask)
        return dict(loss=self.head.loss(pred, imgs, coarse))
