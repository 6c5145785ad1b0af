# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Reconstruction grids: image A, image B, the mixed input, the mask and both
reconstructions, back in pixels.

Used by ``tools/visualize_reconstruction.py`` and
:class:`~mixmae_mm.engine.hooks.reconstruction_hook.MixMAEReconstructionHook`.
See :mod:`mixmae_mm.models.layers.mixing` for the mask convention: image A is
sample ``i`` of the batch, image B its partner ``B-1-i``; the mixed input
shows A's blocks where the mask is 0 and B's where it is 1.
"""
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..models.layers.patch_ops import patchify, unpatchify

#: Column titles of the grid, left to right.
COLUMNS = ('image A', 'image B', 'mixed input', 'mask (white = B)',
           'reconstruction A', 'reconstruction B')
#: Pixels between cells and around the grid.
PAD = 4
#: Height of the title strip above the first row.
HEADER = 20


def unnormalize_prediction(pred: Tensor,
                           imgs: Tensor,
                           patch_size: int = 32,
                           norm_pix: bool = True,
                           eps: float = 1e-6) -> Tensor:
    """Map predictions back to the normalised-image space.

    With ``norm_pix`` every predicted patch is scaled by the standard
    deviation and shifted by the mean of the corresponding target patch
    (the same patch of the normalised image, unbiased variance plus ``eps``,
    exactly as the head built its target), which inverts the target
    normalisation; then the patches are laid back out as images. As in
    MAE's visualisations, the picture thus takes each patch's mean colour
    and contrast from the true image: the model's work is the structure
    inside the patches.

    Args:
        pred (Tensor): Predictions (B, L, P*P*C), un-mixed (one per image).
        imgs (Tensor): The normalised images they reconstruct (B, C, H, W).
        patch_size (int): P. Defaults to 32.
        norm_pix (bool): Whether the targets were per-patch normalised.
            Defaults to True.
        eps (float): The head's variance epsilon. Defaults to 1e-6.

    Returns:
        Tensor: Images (B, C, H, W), comparable to ``imgs``.
    """
    b, c, h, w = imgs.shape
    pred = pred.float()
    if norm_pix:
        target = patchify(imgs.float(), patch_size)  # (B, L, P*P*C)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + eps)**.5 + mean
    return unpatchify(pred, patch_size, (h // patch_size, w // patch_size),
                      c)


def to_pixels(imgs: Tensor,
              mean: Optional[Sequence[float]] = None,
              std: Optional[Sequence[float]] = None,
              bgr: bool = False) -> np.ndarray:
    """Undo ``(x - mean) / std`` and return uint8 RGB images.

    Args:
        imgs (Tensor): Normalised images (B, 3, H, W).
        mean (Sequence[float], optional): Per-channel mean; None for 0.
        std (Sequence[float], optional): Per-channel std; None for 1.
        bgr (bool): The channels are in BGR order (flip them to RGB).
            Defaults to False.

    Returns:
        np.ndarray: uint8 (B, H, W, 3), RGB.
    """
    x = imgs.detach().float().cpu()
    if std is not None:
        x = x * torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    if mean is not None:
        x = x + torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    if bgr:
        x = x.flip(-1)
    return x.numpy()


def _mask_pixels(mask: Tensor, size: Sequence[int]) -> np.ndarray:
    """A (h, w) mix mask as a uint8 (H, W, 3) picture: white where the
    token comes from image B, dark grey where it is A's own."""
    h, w = size
    m = mask.detach().cpu().bool()
    m = m.repeat_interleave(h // m.shape[0], 0).repeat_interleave(
        w // m.shape[1], 1)  # (H, W)
    out = np.where(m.numpy()[..., None], 255, 48).astype(np.uint8)
    return np.repeat(out, 3, axis=-1)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def reconstruction_grid(imgs: Tensor,
                        mixed: Tensor,
                        mix_mask: Tensor,
                        pred: Tensor,
                        mean: Optional[Sequence[float]] = None,
                        std: Optional[Sequence[float]] = None,
                        patch_size: int = 32,
                        norm_pix: bool = True,
                        bgr: bool = False,
                        num_pairs: int = 1,
                        min_cell: int = 128) -> np.ndarray:
    """Draw the reconstruction grid: one row per pair, the columns of
    :data:`COLUMNS`, titles on top.

    Args:
        imgs (Tensor): Normalised, unmixed images (B, 3, H, W).
        mixed (Tensor): The mixed inputs (B, 3, H, W).
        mix_mask (Tensor): Bool mix mask (M, h, w), M in {1, B}.
        pred (Tensor): Un-mixed predictions (B, L, P*P*3), e.g. from
            ``MixMAE.reconstruct``.
        mean (Sequence[float], optional): Normalisation mean.
        std (Sequence[float], optional): Normalisation std.
        patch_size (int): Target patch side P. Defaults to 32.
        norm_pix (bool): Targets were per-patch normalised. Defaults to True.
        bgr (bool): Channels are BGR. Defaults to False.
        num_pairs (int): Rows: pairs (i, B-1-i) for i < num_pairs.
            Defaults to 1.
        min_cell (int): Cells smaller than this are enlarged by an integer
            factor (nearest) so that titles fit. Defaults to 128.

    Returns:
        np.ndarray: uint8 RGB picture (rows, columns, 3) of height
        ``HEADER + PAD + num_pairs * (S + PAD)`` and width
        ``PAD + 6 * (S + PAD)`` for cells of side S.
    """
    b, _, h, w = imgs.shape
    if not 1 <= num_pairs <= (b + 1) // 2:
        raise ValueError(f'num_pairs must lie in [1, {(b + 1) // 2}] for a '
                         f'batch of {b}, got {num_pairs}')
    rec = unnormalize_prediction(pred, imgs, patch_size, norm_pix)
    pix = dict(
        imgs=to_pixels(imgs, mean, std, bgr),
        mixed=to_pixels(mixed, mean, std, bgr),
        rec=to_pixels(rec, mean, std, bgr))
    scale = max(1, -(-min_cell // max(h, w)))
    ch, cw = h * scale, w * scale
    width = PAD + len(COLUMNS) * (cw + PAD)
    height = HEADER + PAD + num_pairs * (ch + PAD)
    canvas = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    for col, title in enumerate(COLUMNS):
        x = PAD + col * (cw + PAD)
        draw.text((x + cw // 2, HEADER // 2 + 1),
                  title,
                  fill='black',
                  font=font,
                  anchor='mm')
    for row in range(num_pairs):
        a, p = row, b - 1 - row
        mask = mix_mask[a if mix_mask.shape[0] > 1 else 0]
        cells = (pix['imgs'][a], pix['imgs'][p], pix['mixed'][a],
                 _mask_pixels(mask, (h, w)), pix['rec'][a], pix['rec'][p])
        y = HEADER + PAD + row * (ch + PAD)
        for col, cell in enumerate(cells):
            tile = Image.fromarray(cell)
            if scale > 1:
                tile = tile.resize((cw, ch), Image.NEAREST)
            canvas.paste(tile, (PAD + col * (cw + PAD), y))
    return np.asarray(canvas)


@torch.no_grad()
def render_model_reconstruction(model: torch.nn.Module,
                                data_batch: dict,
                                num_pairs: int = 1,
                                seed: Optional[int] = 0,
                                min_cell: int = 128) -> np.ndarray:
    """Preprocess a batch, draw a mask, reconstruct and draw the grid.

    Only the samples of the first ``num_pairs`` pairs are used (i and B-1-i,
    which stay partners in the sub-batch). The mask is drawn by the model's
    data preprocessor with ``seed`` inside a forked RNG, so the caller's
    random streams (e.g. training) are untouched and the same seed gives the
    same mask. The model runs in eval mode and is put back as it was.

    Args:
        model (nn.Module): A :class:`~mixmae_mm.models.MixMAE` (not wrapped),
            with ``data_preprocessor`` (mean, std, channel conversion),
            ``head.patch_size``, ``head.norm_pix`` and ``reconstruct``.
        data_batch (dict): ``inputs`` (a uint8 (B, 3, H, W) tensor, or a
            list of (3, H, W) tensors of one size, as the dataloader yields)
            and optionally ``data_samples``.
        num_pairs (int): Rows of the grid. Defaults to 1.
        seed (int, optional): Seed of the mask; None draws from the current
            RNG state (still forked). Defaults to 0.
        min_cell (int): See :func:`reconstruction_grid`.

    Returns:
        np.ndarray: uint8 RGB grid, see :func:`reconstruction_grid`.
    """
    if not hasattr(model, 'reconstruct'):
        raise TypeError(f'{type(model).__name__} has no `reconstruct`; '
                        f'reconstruction grids need a MixMAE model')
    inputs = data_batch['inputs']
    b = len(inputs)
    if b < 2:
        raise ValueError('a reconstruction grid needs a pair of images, '
                         f'got a batch of {b}')
    num_pairs = min(num_pairs, b // 2)
    idx = list(range(num_pairs)) + list(range(b - num_pairs, b))
    # one view per sample, stacked as the default_collate of pretraining
    sub = dict(
        inputs=inputs[idx] if isinstance(inputs, Tensor) else torch.stack(
            [inputs[i] for i in idx]),
        data_samples=None)
    samples = data_batch.get('data_samples')
    if samples is not None:
        sub['data_samples'] = [samples[i] for i in idx]
    prep = model.data_preprocessor
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() \
        else []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            data = prep(sub, False)
        imgs, mixed, mix_mask = data['inputs']
        pred = model.reconstruct(data['inputs'])
    finally:
        model.train(was_training)
    normalize = getattr(prep, '_enable_normalize', False)
    return reconstruction_grid(
        imgs,
        mixed,
        mix_mask,
        pred,
        mean=prep.mean.flatten().tolist() if normalize else None,
        std=prep.std.flatten().tolist() if normalize else None,
        patch_size=model.head.patch_size,
        norm_pix=model.head.norm_pix,
        bgr=not getattr(prep, '_channel_conversion', False),
        num_pairs=num_pairs,
        min_cell=min_cell)


def save_png(grid: np.ndarray, path: str) -> str:
    """Write a uint8 RGB picture as PNG (parent folders created).

    Args:
        grid (np.ndarray): uint8 (H, W, 3), RGB.
        path (str): Output file.

    Returns:
        str: ``path``.
    """
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    Image.fromarray(grid).save(path, format='PNG')
    return path


__all__ = [
    'COLUMNS', 'PAD', 'HEADER', 'unnormalize_prediction', 'to_pixels',
    'reconstruction_grid', 'render_model_reconstruction', 'save_png'
]
