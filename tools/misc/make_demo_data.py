# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Write the embedded demo data sets (deterministic, seconds).

Writes, under ``--out``:

* ``imagenet/``: ImageNet-style class folders (mmpretrain),
* ``coco/``: COCO-style instances (mmdet, ``classes=COCO_CLASSES``),
* ``ade/ADEChallengeData2016/``: ADE20K-style label maps (mmseg).

A set that is already complete is skipped unless ``--force``.

Example:
    python tools/misc/make_demo_data.py --out data/demo
"""
import argparse
import json
import os.path as osp
import time
from pathlib import Path

# demo_data.py sits next to this script, so the script's own folder (first
# on sys.path when run as ``python tools/misc/make_demo_data.py``) holds it.
from demo_data import (IMAGENET_CLASSES, make_ade20k, make_coco_instances,
                       make_imagenet_folder)

#: Images per split of each set (train, val). Sized so that README
#: command 1 (pretraining on the 256 ImageNet-style training images, then
#: the fine-tuning runs) takes under 10 minutes on 2 idle CPU cores, with
#: validation sets large enough to steady the scores (one of the 128
#: classification images is 0.8 points of top-1).
IMAGENET_PER_CLASS = (64, 32)
COCO_IMAGES = (64, 32)
ADE_IMAGES = (32, 16)
#: COCO-style objects: 1-3 per image, radius 14-30% of the shorter side
#: (about 35-77 px across at 128 x 160), big enough for Mask R-CNN's
#: anchors to match in the demo's few hundred steps.
COCO_OBJECTS = dict(max_objects=3, radius=(0.14, 0.3))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo', help='output root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--force', action='store_true', help='rewrite existing sets')
    return parser.parse_args()


def imagenet_complete(root: str) -> bool:
    """Both annotation lists exist, list the expected number of images,
    and every listed image exists."""
    for split, per_class in zip(('train', 'val'), IMAGENET_PER_CLASS):
        meta = Path(root, 'meta', f'{split}.txt')
        if not meta.is_file():
            return False
        lines = meta.read_text().split('\n')
        names = [ln.rsplit(' ', 1)[0] for ln in lines if ln.strip()]
        if len(names) != per_class * len(IMAGENET_CLASSES) or not all(
                Path(root, split, n).is_file() for n in names):
            return False
    return True


def coco_complete(root: str) -> bool:
    """Both JSON files exist, hold the expected number of images, and every
    image they list exists."""
    for split, num in zip(('train', 'val'), COCO_IMAGES):
        ann = Path(root, 'annotations', f'instances_{split}2017.json')
        if not ann.is_file():
            return False
        try:
            images = json.loads(ann.read_text())['images']
        except (ValueError, KeyError):
            return False
        if len(images) != num or not all(
                Path(root, f'{split}2017', im['file_name']).is_file()
                for im in images):
            return False
    return True


def ade_complete(root: str) -> bool:
    """Each split has the expected number of images, each with its label
    map of the same stem."""
    for split, num in zip(('training', 'validation'), ADE_IMAGES):
        imgs = {p.stem for p in Path(root, 'images', split).glob('*.jpg')}
        anns = {p.stem for p in Path(root, 'annotations', split).glob('*.png')}
        if len(imgs) != num or imgs != anns:
            return False
    return True


def main():
    args = parse_args()
    sets = [
        ('ImageNet-style', osp.join(args.out, 'imagenet'), imagenet_complete,
         lambda root: make_imagenet_folder(
             root, *IMAGENET_PER_CLASS, seed=args.seed)),
        ('COCO-style', osp.join(args.out, 'coco'), coco_complete,
         lambda root: make_coco_instances(
             root, *COCO_IMAGES, seed=args.seed, **COCO_OBJECTS)),
        ('ADE20K-style', osp.join(args.out, 'ade',
                                  'ADEChallengeData2016'), ade_complete,
         lambda root: make_ade20k(root, *ADE_IMAGES, seed=args.seed)),
    ]
    for name, root, complete, make in sets:
        if complete(root) and not args.force:
            print(f'demo {name} set exists: {root} (use --force)')
            continue
        start = time.time()
        counts = make(root)
        print(f'wrote demo {name} set {counts} to {root} '
              f'in {time.time() - start:.1f}s')


if __name__ == '__main__':
    main()
