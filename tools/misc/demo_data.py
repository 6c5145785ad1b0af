# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Small, deterministic demo data sets in the true upstream formats.

``make_imagenet_folder`` writes an ImageNet-style folder
(``{train,val}/<class>/<name>.JPEG``) that mmpretrain's ``CustomDataset``
and ``ImageNet`` (folder mode) read. Images have structure (a textured or
graded background and several shapes whose kind gives the class), not noise.

``make_coco_instances`` writes a COCO-style instance set
(``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/*.jpg``)
that mmdet's ``CocoDataset`` (with ``metainfo=dict(classes=COCO_CLASSES)``)
and ``CocoMetric`` read. Every object is painted with exactly the mask that
pycocotools rasterises from its annotated polygon, and objects never touch,
so ``segmentation``, ``area`` and ``bbox`` describe the visible pixels.

``make_ade20k`` writes mmseg's ADE20K layout
(``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png``): label maps use ADE20K's
0..150 values (0 = other, ignored with ``reduce_zero_label=True``) and the
image colour and texture of a pixel follow its class.
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

#: Classes of the demo ImageNet-style set; the shape drawn gives the class.
IMAGENET_CLASSES = ('circles', 'squares', 'triangles', 'stripes')
#: Classes of the toy-reproduction set (``tools/experiments``): the demo's
#: four and four more, some of which differ from others only in detail
#: (rings vs circles, diamonds vs squares, checkers vs stripes).
TOY_CLASSES = IMAGENET_CLASSES + ('rings', 'crosses', 'diamonds', 'checkers')


def _hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``size`` as ``(H, W)``; an int means a square."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _background(rng: np.random.Generator,
                size: Union[int, Sequence[int]]) -> np.ndarray:
    """A random linear gradient plus a sinusoidal texture, uint8 (H, W, 3)."""
    h, w = _hw(size)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
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
    elif kind == 'rings':
        draw.ellipse(box, outline=color, width=max(2, int(x1 - x0) // 6))
    elif kind == 'crosses':
        t = (x1 - x0) / 6
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        draw.rectangle((cx - t, y0, cx + t, y1), fill=color)
        draw.rectangle((x0, cy - t, x1, cy + t), fill=color)
    elif kind == 'diamonds':
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=color)
    elif kind == 'checkers':
        step = max(2, int(x1 - x0) // 4)
        for i, x in enumerate(range(int(x0), int(x1) - step + 1, step)):
            for j, y in enumerate(range(int(y0), int(y1) - step + 1, step)):
                if (i + j) % 2 == 0:
                    draw.rectangle((x, y, x + step - 1, y + step - 1),
                                   fill=color)
    else:
        raise ValueError(f'unknown shape kind {kind!r}')


def render_image(rng: np.random.Generator, kind: str,
                 size: int) -> Image.Image:
    """One demo image of class ``kind``: a single shape of 40-70% of the
    side in a colour far from the background's, so that the few-minute
    demo fine-tuning can learn the class from 256 images."""
    bg = _background(rng, size)
    img = Image.fromarray(bg)
    side = rng.uniform(0.4, 0.7) * size
    x0, y0 = rng.uniform(0, size - side, 2)
    color = _contrasting_color(rng, bg[::8, ::8].reshape(-1, 3))
    _draw_shape(ImageDraw.Draw(img), kind, (x0, y0, x0 + side, y0 + side),
                color)
    return img


def render_toy_image(rng: np.random.Generator, kind: str,
                     size: int) -> Image.Image:
    """One toy-reproduction image of class ``kind``: one or two large
    shapes in a colour far from the background's."""
    bg = _background(rng, size)
    img = Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 3))):
        side = rng.uniform(0.35, 0.65) * size
        x0, y0 = rng.uniform(0, size - side, 2)
        color = _contrasting_color(rng, bg[::8, ::8].reshape(-1, 3))
        _draw_shape(draw, kind, (x0, y0, x0 + side, y0 + side), color)
    return img


def make_imagenet_folder(out_dir: str,
                         num_train: int = 64,
                         num_val: int = 16,
                         size: int = 128,
                         seed: int = 0,
                         classes: Sequence[str] = IMAGENET_CLASSES,
                         num_unlabelled: int = 0,
                         style: str = 'demo') -> Dict[str, int]:
    """Write ``out_dir/{train,val}/<class>/*.JPEG`` (and ``meta/*.txt``
    annotation lists in mmpretrain's ``path label`` format).

    Args:
        out_dir (str): Root of the set.
        num_train (int): Training images per class. Defaults to 64.
        num_val (int): Validation images per class. Defaults to 16.
        size (int): Image side in pixels. Defaults to 128.
        seed (int): Seed; the same seed writes the same files.
        classes (Sequence[str]): Shape kinds, one class each (see
            ``TOY_CLASSES`` for all kinds). Defaults to ``IMAGENET_CLASSES``.
        num_unlabelled (int): Images in ``out_dir/unlabelled/`` (no class
            folders; classes drawn uniformly), for self-supervised
            pretraining. Written after the labelled splits, so they do not
            change them. Defaults to 0.
        style (str): 'demo' (one shape of 40-70% of the side in a
            contrasting colour, :func:`render_image`) or 'toy' (1-2 shapes
            of 35-65% in contrasting colours, :func:`render_toy_image`).
            Defaults to 'demo'.

    Returns:
        dict[str, int]: Number of images written per split.
    """
    renderers = dict(demo=render_image, toy=render_toy_image)
    if style not in renderers:
        raise ValueError(f'style must be one of {sorted(renderers)}, got '
                         f'{style!r}')
    render = renderers[style]
    rng = np.random.default_rng(seed)
    counts = {}
    meta = Path(out_dir, 'meta')
    meta.mkdir(parents=True, exist_ok=True)
    for split, per_class in (('train', num_train), ('val', num_val)):
        lines = []
        for label, kind in enumerate(classes):
            folder = Path(out_dir, split, kind)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                name = f'{kind}_{split}_{i:04d}.JPEG'
                render(rng, kind, size).save(folder / name, quality=90)
                lines.append(f'{osp.join(kind, name)} {label}')
        Path(meta, f'{split}.txt').write_text('\n'.join(lines) + '\n')
        counts[split] = len(lines)
    if num_unlabelled:
        folder = Path(out_dir, 'unlabelled')
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(num_unlabelled):
            kind = classes[int(rng.integers(len(classes)))]
            render(rng, kind, size).save(
                folder / f'img_{i:05d}.JPEG', quality=90)
        counts['unlabelled'] = num_unlabelled
    return counts


# --------------------------------------------------------------------------
# COCO-style instances
# --------------------------------------------------------------------------

#: Categories of the demo COCO-style set, ids 1, 2, 3 in this order.
COCO_CLASSES = ('circle', 'square', 'triangle')


def _coco_polygon(rng: np.random.Generator, kind: str, cx: int, cy: int,
                  r: int) -> List[int]:
    """Integer polygon ``[x0, y0, x1, y1, ...]`` of a shape of kind ``kind``
    centred at ``(cx, cy)`` inside the circle of radius ``r``."""
    if kind == 'circle':
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    elif kind == 'square':
        angles = rng.uniform(0, np.pi / 2) + np.arange(4) * np.pi / 2
    elif kind == 'triangle':
        angles = (
            rng.uniform(0, 2 * np.pi) + np.arange(3) * 2 * np.pi / 3 +
            rng.uniform(-0.3, 0.3, 3))
    else:
        raise ValueError(f'unknown shape kind {kind!r}')
    xs = np.rint(cx + r * np.cos(angles)).astype(int)
    ys = np.rint(cy + r * np.sin(angles)).astype(int)
    return [int(v) for xy in zip(xs, ys) for v in xy]


def _poly_rle(polys: List[List[int]], h: int, w: int) -> dict:
    """The RLE pycocotools rasterises from polygon list ``polys``."""
    from pycocotools import mask as mask_util
    return mask_util.merge(mask_util.frPyObjects(polys, h, w))


def _contrasting_color(rng: np.random.Generator,
                       pixels: np.ndarray) -> Tuple[int, int, int]:
    """Of a few random colours, the one farthest (minimum RGB distance) from
    every pixel in ``pixels`` (N, 3)."""
    cands = rng.integers(0, 256, (16, 3))
    dist = np.linalg.norm(
        pixels[None].astype(float) - cands[:, None].astype(float), axis=-1)
    best = cands[int(dist.min(axis=1).argmax())]
    return tuple(int(c) for c in best)


def render_coco_image(
        rng: np.random.Generator,
        size: Union[int, Sequence[int]] = (128, 160),
        max_objects: int = 4,
        gap: int = 3,
        radius: Tuple[float, float] = (0.1, 0.25)
) -> Tuple[np.ndarray, List[dict]]:
    """One demo detection image and its objects.

    Shapes of random kind, size and place are laid out so that their boxes
    stay ``gap`` pixels apart; each is painted in one flat colour chosen to
    contrast with the background around it, over exactly the pixels that
    pycocotools decodes from its polygon.

    Args:
        rng (np.random.Generator): Source of randomness.
        size (int | tuple[int, int]): ``(H, W)``, or a square side.
        max_objects (int): At most this many objects (at least one).
        gap (int): Minimum distance in pixels between object boxes.
        radius (tuple[float, float]): Range of an object's radius (half its
            box side) as fractions of the shorter image side; at least 4 px.

    Returns:
        tuple[np.ndarray, list[dict]]: The uint8 (H, W, 3) RGB image and one
        dict per object with ``category_id``, ``polygon`` (flat integer
        list) and ``mask`` (uint8 (H, W)).
    """
    from pycocotools import mask as mask_util
    h, w = _hw(size)
    r_min = max(4, int(radius[0] * min(h, w)))
    r_max = int(radius[1] * min(h, w))
    if not 0 < radius[0] <= radius[1] < 0.5 or r_max < r_min:
        raise ValueError(f'radius must be fractions 0 < lo <= hi < 0.5 of '
                         f'the shorter side giving at least 4 px, got '
                         f'{radius} for size {(h, w)}')
    img = _background(rng, (h, w))
    objects, boxes = [], []
    target = int(rng.integers(1, max_objects + 1))
    for _ in range(50 * target):
        if len(objects) == target:
            break
        r = int(rng.integers(r_min, r_max + 1))
        cx = int(rng.integers(r + 1, w - r))
        cy = int(rng.integers(r + 1, h - r))
        box = (cx - r - gap, cy - r - gap, cx + r + gap, cy + r + gap)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3]
               and b[1] < box[3] for b in boxes):
            continue
        cat = int(rng.integers(len(COCO_CLASSES)))
        poly = _coco_polygon(rng, COCO_CLASSES[cat], cx, cy, r)
        mask = mask_util.decode(_poly_rle([poly], h, w))
        if mask.sum() == 0:
            continue
        y0, x0 = max(0, box[1]), max(0, box[0])
        around = img[y0:box[3] + 1, x0:box[2] + 1].reshape(-1, 3)
        img[mask.astype(bool)] = _contrasting_color(rng, around)
        boxes.append(box)
        objects.append(dict(category_id=cat + 1, polygon=poly, mask=mask))
    return img, objects


def make_coco_instances(out_dir: str,
                        num_train: int = 16,
                        num_val: int = 8,
                        size: Union[int, Sequence[int]] = (128, 160),
                        seed: int = 0,
                        max_objects: int = 4,
                        radius: Tuple[float, float] = (0.1, 0.25),
                        sizes: Optional[Sequence] = None
                        ) -> Dict[str, Dict[str, int]]:
    """Write a COCO-style instance set: ``out_dir/{train,val}2017/*.jpg`` and
    ``out_dir/annotations/instances_{train,val}2017.json``.

    The JSON files follow the COCO instance format (``info``, ``licenses``,
    ``images``, ``annotations``, ``categories``); ``segmentation`` is a list
    with one integer polygon, ``area`` and ``bbox`` are those of the mask
    pycocotools rasterises from it (``mask.area`` and ``mask.toBbox``), which
    is also exactly the set of pixels painted with the object's colour.
    Categories are :data:`COCO_CLASSES` with ids 1, 2, 3; mmdet reads them
    with ``metainfo=dict(classes=COCO_CLASSES)``.

    Args:
        out_dir (str): Root of the set.
        num_train (int): Training images. Defaults to 16.
        num_val (int): Validation images. Defaults to 8.
        size (int | tuple[int, int]): Image ``(H, W)``, or a square side.
            Defaults to ``(128, 160)``.
        seed (int): Seed; the same seed writes the same files.
        max_objects (int): At most this many objects per image (1 to this
            many, uniformly). Defaults to 4.
        radius (tuple[float, float]): Object radius range as fractions of
            the shorter image side (see :func:`render_coco_image`).
            Defaults to ``(0.1, 0.25)``.
        sizes (list, optional): One ``size`` per image, training images
            first, instead of ``size`` for all (e.g. a set whose images all
            differ in size).

    Returns:
        dict[str, dict[str, int]]: Per split (``'train'``, ``'val'``), the
        number of ``images`` and ``instances`` written.
    """
    from pycocotools import mask as mask_util
    rng = np.random.default_rng(seed)
    sizes = [_hw(s) for s in sizes] if sizes is not None else \
        [_hw(size)] * (num_train + num_val)
    if len(sizes) != num_train + num_val:
        raise ValueError(f'sizes must give one size per image '
                         f'({num_train + num_val}), got {len(sizes)}')
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(COCO_CLASSES)
    ]
    Path(out_dir, 'annotations').mkdir(parents=True, exist_ok=True)
    counts = {}
    img_id = ann_id = 0
    for split, num in (('train', num_train), ('val', num_val)):
        folder = Path(out_dir, f'{split}2017')
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for _ in range(num):
            img_id += 1
            name = f'{img_id:012d}.jpg'
            h, w = sizes[img_id - 1]
            img, objects = render_coco_image(rng, (h, w), max_objects,
                                             radius=radius)
            Image.fromarray(img).save(folder / name, quality=95, subsampling=0)
            images.append(
                dict(
                    id=img_id,
                    file_name=name,
                    height=h,
                    width=w,
                    license=1,
                    date_captured=''))
            for obj in objects:
                ann_id += 1
                rle = _poly_rle([obj['polygon']], h, w)
                annotations.append(
                    dict(
                        id=ann_id,
                        image_id=img_id,
                        category_id=obj['category_id'],
                        segmentation=[obj['polygon']],
                        area=float(mask_util.area(rle)),
                        bbox=[float(v) for v in mask_util.toBbox(rle)],
                        iscrowd=0))
        coco = dict(
            info=dict(
                description='mixmae_mm demo COCO-style instances',
                version='1.0',
                year=2017,
                contributor='mixmae_mm',
                date_created='2017/01/01',
                url=''),
            licenses=[dict(id=1, name='CC0 1.0', url='')],
            images=images,
            annotations=annotations,
            categories=categories)
        # written last: its presence means the split is complete
        Path(out_dir, 'annotations',
             f'instances_{split}2017.json').write_text(json.dumps(coco))
        counts[split] = dict(images=len(images), instances=len(annotations))
    return counts


# --------------------------------------------------------------------------
# ADE20K-style semantic segmentation
# --------------------------------------------------------------------------

#: Classes drawn in the demo ADE20K-style set: name -> (label value in the
#: PNG maps, i.e. 1 + index in mmseg's ``ADE20KDataset.METAINFO['classes']``,
#: base RGB colour). Label 0 ("other") is never a class.
ADE_CLASSES = {
    'wall': (1, (200, 190, 165)),
    'building': (2, (150, 75, 55)),
    'sky': (3, (105, 165, 235)),
    'floor': (4, (125, 85, 40)),
    'tree': (5, (30, 110, 35)),
    'ceiling': (6, (240, 240, 225)),
    'road': (7, (70, 70, 80)),
    'grass': (10, (110, 190, 60)),
    'person': (13, (225, 155, 125)),
    'car': (21, (35, 60, 185)),
    'painting': (23, (235, 200, 40)),
}


def _ade_label_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random indoor or outdoor scene as a uint8 (H, W) label map."""
    L = {k: v[0] for k, v in ADE_CLASSES.items()}
    seg = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(seg)
    horizon = int(h * rng.uniform(0.35, 0.6))
    wave = rng.uniform(
        0, h / 20) * np.sin(2 * np.pi * rng.uniform(0.5, 2) *
                            np.arange(w + 1) / w + rng.uniform(0, 2 * np.pi))
    ground = [(x, int(horizon + wave[x])) for x in range(w + 1)]
    outdoor = bool(rng.random() < 0.6)
    if outdoor:
        draw.rectangle((0, 0, w, h), fill=L['sky'])
        draw.polygon(ground + [(w, h), (0, h)], fill=L['grass'])
        # buildings standing on the horizon
        for _ in range(int(rng.integers(0, 3))):
            bw = int(rng.integers(w // 8, w // 3))
            bx = int(rng.integers(0, w - bw))
            top = int(horizon * rng.uniform(0.2, 0.7))
            draw.rectangle((bx, top, bx + bw, horizon + 2),
                           fill=L['building'],
                           outline=0)
        # a road from the bottom edge towards the horizon
        if rng.random() < 0.7:
            mid, half = rng.uniform(0.3, 0.7) * w, rng.uniform(0.2, 0.4) * w
            draw.polygon([(int(mid - half), h), (int(mid + half), h),
                          (int(mid + half / 4), horizon + 4),
                          (int(mid - half / 4), horizon + 4)],
                         fill=L['road'])
            if rng.random() < 0.8:
                cw, ch = int(w * rng.uniform(0.15, 0.25)), int(
                    h * rng.uniform(0.08, 0.14))
                cx = int(mid - cw / 2)
                cy = int(rng.uniform(horizon + 8, h - ch - 2))
                draw.rectangle((cx, cy, cx + cw, cy + ch),
                               fill=L['car'],
                               outline=0)
                draw.polygon([(cx + cw // 5, cy), (cx + cw // 3, cy - ch // 2),
                              (cx + 2 * cw // 3, cy - ch // 2),
                              (cx + 4 * cw // 5, cy)],
                             fill=L['car'])
        for _ in range(int(rng.integers(1, 4))):
            tr = int(rng.integers(h // 12, h // 6))
            tx = int(rng.integers(tr, w - tr))
            ty = int(horizon + rng.uniform(-0.5, 1.5) * tr)
            draw.rectangle((tx - tr // 5, ty, tx + tr // 5, ty + 2 * tr),
                           fill=L['tree'])
            draw.ellipse((tx - tr, ty - 2 * tr, tx + tr, ty),
                         fill=L['tree'],
                         outline=0)
    else:
        draw.rectangle((0, 0, w, h), fill=L['wall'])
        draw.polygon(ground + [(w, h), (0, h)], fill=L['floor'])
        if rng.random() < 0.5:
            draw.rectangle((0, 0, w, int(horizon * rng.uniform(0.1, 0.25))),
                           fill=L['ceiling'],
                           outline=0)
        for _ in range(int(rng.integers(1, 3))):
            pw, ph = int(w * rng.uniform(0.1, 0.25)), int(
                horizon * rng.uniform(0.2, 0.4))
            px = int(rng.integers(0, w - pw))
            py = int(rng.uniform(0.3, 0.6) * (horizon - ph))
            draw.rectangle((px, py, px + pw, py + ph),
                           fill=L['painting'],
                           outline=0,
                           width=2)
    # people: a head and a body
    for _ in range(int(rng.integers(0, 3))):
        ph = int(h * rng.uniform(0.2, 0.4))
        px = int(rng.integers(ph // 4, w - ph // 4))
        foot = int(rng.uniform(horizon, h))
        head = ph // 6
        draw.rectangle(
            (px - ph // 8, foot - ph + 2 * head, px + ph // 8, foot),
            fill=L['person'],
            outline=0)
        draw.ellipse((px - head, foot - ph, px + head, foot - ph + 2 * head),
                     fill=L['person'])
    # unlabelled clutter ("other", label 0)
    for _ in range(int(rng.integers(1, 3))):
        r = rng.uniform(h / 30, h / 10)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
        rad = r * rng.uniform(0.5, 1.0, 6)
        draw.polygon([(int(cx + a * np.cos(t)), int(cy + a * np.sin(t)))
                      for a, t in zip(rad, ang)],
                     fill=0)
    return np.asarray(seg, dtype=np.uint8)


def _ade_image(rng: np.random.Generator, seg: np.ndarray) -> np.ndarray:
    """Colour a label map: per-class base colour (jittered per image), a
    per-class sinusoidal texture, a global illumination ramp and noise."""
    h, w = seg.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.empty((h, w, 3))
    other = rng.uniform(0, 255, 3)
    img[:] = other + 40 * np.sin(2 * np.pi * rng.uniform(4, 10) *
                                 (xx + yy))[..., None]
    for idx, (_, (label, color)) in enumerate(sorted(ADE_CLASSES.items())):
        where = seg == label
        # draw the same random numbers whether the class is present or not
        base = np.asarray(color) + rng.normal(0, 10, 3)
        phase = rng.uniform(0, 2 * np.pi)
        if not where.any():
            continue
        freq = 3 + 2 * (idx % 5)
        angle = idx * np.pi / len(ADE_CLASSES)
        tex = np.sin(2 * np.pi * freq *
                     (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
        img[where] = base + 15 * tex[where][:, None]
    img *= (0.85 + 0.3 * (rng.uniform() * xx + rng.uniform() * yy) / 2)[...,
                                                                        None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_ade20k(out_dir: str,
                num_train: int = 16,
                num_val: int = 8,
                size: Union[int, Sequence[int]] = (128, 160),
                seed: int = 0) -> Dict[str, int]:
    """Write an ADE20K-style set in mmseg's layout:
    ``out_dir/images/{training,validation}/ADE_{train,val}_*.jpg`` and
    ``out_dir/annotations/{training,validation}/ADE_{train,val}_*.png``.

    Label maps are single-channel (mode ``'L'``) uint8 PNGs with ADE20K's
    values: 0 is "other" (mmseg's ``ADE20KDataset`` reads it with
    ``reduce_zero_label=True``, so 0 -> 255 ignored and ``v`` -> ``v - 1``),
    the other values are those of :data:`ADE_CLASSES`. Each scene is an
    indoor (wall, floor, ceiling, paintings) or outdoor (sky, grass, road,
    buildings, trees, a car) layout with people and unlabelled clutter; the
    image colour and texture of a pixel follow its class.

    Args:
        out_dir (str): Root of the set (``.../ADEChallengeData2016``).
        num_train (int): Training images. Defaults to 16.
        num_val (int): Validation images. Defaults to 8.
        size (int | tuple[int, int]): Image ``(H, W)``, or a square side.
            Defaults to ``(128, 160)``.
        seed (int): Seed; the same seed writes the same files.

    Returns:
        dict[str, int]: Number of image/label pairs written per split
        (``'training'``, ``'validation'``).
    """
    rng = np.random.default_rng(seed)
    h, w = _hw(size)
    counts = {}
    for split, tag, num in (('training', 'train', num_train),
                            ('validation', 'val', num_val)):
        img_dir = Path(out_dir, 'images', split)
        ann_dir = Path(out_dir, 'annotations', split)
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for i in range(num):
            stem = f'ADE_{tag}_{i + 1:08d}'
            seg = _ade_label_map(rng, h, w)
            Image.fromarray(_ade_image(rng, seg)).save(
                img_dir / f'{stem}.jpg', quality=90)
            Image.fromarray(seg).save(ann_dir / f'{stem}.png')
        counts[split] = num
    return counts
