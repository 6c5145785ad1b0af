# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""MixMAE reconstruction target and loss."""
from typing import Optional

from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from ..layers.mixing import unmix
from ..layers.patch_ops import patchify


@MODELS.register_module()
class MixMAEPretrainHead(BaseModule):
    """Un-mix the two decoder branches and regress normalised pixels.

    Target: the normalised input image cut into ``patch_size`` patches,
    each normalised by its own mean and variance (``norm_pix``, variance
    + 1e-6) as the official ``--norm_pix_loss``. Loss: MSE averaged over all
    tokens and values (every position is predicted exactly once). Without
    dual reconstruction (an ablation) the decoder gives branch 1 only and
    the MSE is averaged over the positions it predicts (mask True).

    Args:
        patch_size (int): Target patch side (the encoder stride;
            :class:`MixMAE` fills it in). Defaults to 32.
        norm_pix (bool): Per-patch normalised target. Defaults to True.
        dual_reconstruction (bool): Whether the decoder output holds both
            branches (official; :class:`MixMAE` fills it in from the
            decoder). Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 patch_size: int = 32,
                 norm_pix: bool = True,
                 dual_reconstruction: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.patch_size = patch_size
        self.norm_pix = norm_pix
        self.dual_reconstruction = dual_reconstruction

    def construct_target(self, imgs: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> targets (B, L, P*P*3)."""
        target = patchify(imgs, self.patch_size)
        if self.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as official
            target = (target - mean) / (var + 1.e-6)**.5
        return target

    def predict(self, pred: Tensor, mix_mask: Tensor) -> Tensor:
        """Un-mix decoder output (2B, L, D) into one prediction per image
        (B, L, D). A single-branch output (B, L, D) is returned as it is:
        only its positions with mask True are predictions of hidden
        tokens. ``mix_mask`` (M, h, w) is on the device of ``pred``."""
        if not self.dual_reconstruction:
            return pred
        x1, x2 = pred.chunk(2)
        return unmix(x1, x2, mix_mask)

    def loss(self, pred: Tensor, imgs: Tensor, mix_mask: Tensor) -> Tensor:
        """
        Args:
            pred (Tensor): Decoder output (2B, L, P*P*3), or (B, L, P*P*3)
                without dual reconstruction.
            imgs (Tensor): The normalised, unmixed images (B, 3, H, W).
            mix_mask (Tensor): Bool (M, h, w) on the device of ``pred``
                (:class:`MixMAE` moves the host mask there once).

        Returns:
            Tensor: Scalar MSE.
        """
        rec = self.predict(pred, mix_mask).float()  # (B, L, P*P*3)
        target = self.construct_target(imgs.float())
        if self.dual_reconstruction:
            return ((rec - target)**2).mean()
        err = ((rec - target)**2).mean(-1)  # (B, L)
        m = mix_mask.flatten(1).expand_as(err).float()  # (B, L)
        return (err * m).sum() / m.sum()
