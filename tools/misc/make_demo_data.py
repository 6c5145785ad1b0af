# Copyright (c) OpenMMLab. All rights reserved.
"""Write the embedded demo data sets (deterministic, seconds).

Example:
    python tools/misc/make_demo_data.py --out data/demo
"""
import argparse
import os.path as osp
import time

from mixmae_mm.utils.demo_data import make_imagenet_folder


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo', help='output root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--force', action='store_true', help='rewrite existing sets')
    return parser.parse_args()


def main():
    args = parse_args()
    root = osp.join(args.out, 'imagenet')
    if osp.exists(osp.join(root, 'meta', 'val.txt')) and not args.force:
        print(f'demo ImageNet-style set exists: {root} (use --force)')
        return
    start = time.time()
    counts = make_imagenet_folder(root, seed=args.seed)
    print(f'wrote {counts} images to {root} in {time.time() - start:.1f}s')


if __name__ == '__main__':
    main()
