# Copyright (c) OpenMMLab. All rights reserved.
"""Small, deterministic demo data sets in the true upstream formats.

``make_imagenet_folder`` writes an ImageNet-style folder
(``{train,val}/<class>/<name>.JPEG``) that mmpretrain's ``CustomDataset``
and ``ImageNet`` (folder mode) read. Images have structure (a textured or
graded background and several shapes whose kind gives the class), not noise.
"""
import os.path as osp
from pathlib import Path
from typing import Dict

import numpy as np
from PIL import Image, ImageDraw

#: Classes of the demo ImageNet-style set; the shape drawn gives the class.
IMAGENET_CLASSES = ('circles', 'squares', 'triangles', 'stripes')


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random linear gradient plus a sinusoidal texture, uint8 (S, S, 3)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy  # (S, S)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0 + (c1 - c0) * ((ramp - ramp.min()) / np.ptp(ramp))[..., None]
    freq = rng.uniform(2, 8)
    tex = np.sin(2 * np.pi * freq * (xx * np.cos(-angle) + yy))
    img += 20 * tex[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, box, color) -> None:
    x0, y0, x1, y1 = box
    if kind == 'circles':
        draw.ellipse(box, fill=color)
    elif kind == 'squares':
        draw.rectangle(box, fill=color)
    elif kind == 'triangles':
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=color)
    elif kind == 'stripes':
        step = max(2, int(x1 - x0) // 6)
        for x in range(int(x0), int(x1), 2 * step):
            draw.rectangle((x, y0, x + step - 1, y1), fill=color)
    else:
        raise ValueError(f'unknown shape kind {kind!r}')


def render_image(rng: np.random.Generator, kind: str,
                 size: int) -> Image.Image:
    """One demo image of class ``kind``."""
    img = Image.fromarray(_background(rng, size))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        side = rng.uniform(0.2, 0.5) * size
        x0, y0 = rng.uniform(0, size - side, 2)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        _draw_shape(draw, kind, (x0, y0, x0 + side, y0 + side), color)
    return img


def make_imagenet_folder(out_dir: str,
                         num_train: int = 64,
                         num_val: int = 16,
                         size: int = 128,
                         seed: int = 0) -> Dict[str, int]:
    """Write ``out_dir/{train,val}/<class>/*.JPEG`` (and ``meta/*.txt``
    annotation lists in mmpretrain's ``path label`` format).

    Args:
        out_dir (str): Root of the set.
        num_train (int): Training images per class. Defaults to 64.
        num_val (int): Validation images per class. Defaults to 16.
        size (int): Image side in pixels. Defaults to 128.
        seed (int): Seed; the same seed writes the same files.

    Returns:
        dict[str, int]: Number of images written per split.
    """
    rng = np.random.default_rng(seed)
    counts = {}
    meta = Path(out_dir, 'meta')
    meta.mkdir(parents=True, exist_ok=True)
    for split, per_class in (('train', num_train), ('val', num_val)):
        lines = []
        for label, kind in enumerate(IMAGENET_CLASSES):
            folder = Path(out_dir, split, kind)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                name = f'{kind}_{split}_{i:04d}.JPEG'
                render_image(rng, kind, size).save(
                    folder / name, quality=90)
                lines.append(f'{osp.join(kind, name)} {label}')
        Path(meta, f'{split}.txt').write_text('\n'.join(lines) + '\n')
        counts[split] = len(lines)
    return counts
