# Copyright (c) OpenMMLab. All rights reserved.
"""MixMAE: wiring of preprocessor output, encoder, decoder and head."""
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..layers.mixing import resample_mask


@MODELS.register_module()
class MixMAE(BaseSelfSupervisor):
    """MixMAE: Mixed and Masked Autoencoder.

    Implementation of `MixMAE <https://arxiv.org/abs/2205.13137>`_. Two
    images share one random mask on the stride-32 grid; the encoder sees the
    mixed image with masked self-attention, the decoder rebuilds both.

    Args:
        backbone (dict): :class:`MixMAESwin` config, ``out_indices`` the last
            stage.
        neck (dict): :class:`MixMAEPretrainDecoder` config.
        head (dict): :class:`MixMAEPretrainHead` config.
        masked_attention (bool): Tokens attend only to tokens of their own
            image (official). False lets them attend across the two images
            (an ablation). Defaults to True.
        pretrained (str, optional): Deprecated checkpoint path.
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='MixMAEDataPreprocessor')``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 masked_attention: bool = True,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='MixMAEDataPreprocessor')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.masked_attention = masked_attention
        last = len(self.backbone.num_features) - 1
        if tuple(self.backbone.out_indices) != (last, ):
            raise ValueError(f'MixMAE pretraining needs backbone out_indices '
                             f'=({last},), got {self.backbone.out_indices}')
        stride = self.backbone.out_strides[last]
        channels = self.backbone.num_features[last]
        if self.neck.patch_size != stride or self.head.patch_size != stride:
            raise ValueError(
                f'neck.patch_size ({self.neck.patch_size}) and '
                f'head.patch_size ({self.head.patch_size}) must equal the '
                f'encoder stride {stride}')
        if self.neck.in_channels != channels:
            raise ValueError(f'neck.in_channels ({self.neck.in_channels}) '
                             f'must equal the encoder width {channels}')
        mix_stride = getattr(self.data_preprocessor, 'mix_stride', stride)
        if mix_stride not in self.backbone.out_strides:
            raise ValueError(
                f'data_preprocessor.mix_stride ({mix_stride}) must be the '
                f'encoder stride {stride} (or, for the fine-mask ablation, '
                f'another stage stride of {self.backbone.out_strides})')
        if self.neck.dual_reconstruction != self.head.dual_reconstruction:
            raise ValueError(
                f'neck.dual_reconstruction '
                f'({self.neck.dual_reconstruction}) and '
                f'head.dual_reconstruction ({self.head.dual_reconstruction})'
                f' must agree')

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
            latent = self.backbone(mixed, mix_mask)[-1]  # (B, C, h, w)
        else:
            latent = self.backbone(mixed)[-1]
        stride = self.backbone.out_strides[-1]
        mask_stride = mixed.shape[-1] // mix_mask.shape[-1]
        coarse = resample_mask(mix_mask, mask_stride, stride)  # (M, h, w)
        # one copy for the decoder and the loss (a no-op for a device mask)
        coarse = coarse.to(latent.device, non_blocking=True)
        return self.neck(latent, coarse), coarse

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
                device mask works too, read back once by the encoder).
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
