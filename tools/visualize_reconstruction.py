# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Draw what a MixMAE model reconstructs from two mixed images.

The two images are resized (shorter side) and centre-cropped to the
pretraining size (the train pipeline's crop by default), mixed with a random
mask drawn by the model's data preprocessor, and reconstructed; the PNG shows
image A, image B, the mixed input, the mask and both reconstructions (un-
normalised back to pixels), one titled column each.

Example:
    python tools/visualize_reconstruction.py \\
        configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py \\
        work_dirs/demo/pretrain/epoch_30.pth IMG_A.JPEG IMG_B.JPEG \\
        --out docs/reconstruction_demo.png --seed 0
"""
import argparse
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

import mixmae_mm  # noqa: F401  (registers the MixMAE modules)
from mixmae_mm.visualization import render_model_reconstruction, save_png


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Render a MixMAE reconstruction grid for two images')
    parser.add_argument('config', help='MixMAE pretraining config')
    parser.add_argument('checkpoint', help='checkpoint of that model')
    parser.add_argument('image_a', help='first image')
    parser.add_argument('image_b', help='second image (the partner)')
    parser.add_argument('--out', required=True, help='output PNG file')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the mix mask')
    parser.add_argument(
        '--size',
        type=int,
        default=None,
        help='square input side, a multiple of 32 (default: the crop size '
        'of the config\'s train pipeline)')
    parser.add_argument(
        '--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy format')
    return parser.parse_args(argv)


def pretrain_size(cfg: Config) -> Optional[int]:
    """The square crop side of the config's train pipeline, if any.

    Args:
        cfg (Config): A pretraining config.

    Returns:
        int | None: ``scale`` of ``RandomResizedCrop`` (or ``crop_size`` /
        ``scale`` of another crop), None if the pipeline has no crop.
    """
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get(
        'pipeline', cfg.get('train_pipeline', []))
    for t in pipeline:
        if 'Crop' not in str(t.get('type', '')):
            continue
        size = t.get('scale', t.get('crop_size', t.get('size')))
        if isinstance(size, (list, tuple)):
            if size[0] != size[-1]:
                continue
            size = size[0]
        if isinstance(size, int):
            return size
    return None


def main(argv=None) -> str:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    size = args.size or pretrain_size(cfg) or 224
    if size % 32:
        raise SystemExit(f'error: --size must be a multiple of 32 (the '
                         f'mixing grid), got {size}')

    model = MODELS.build(cfg.model)
    if not hasattr(model, 'reconstruct'):
        raise SystemExit(f'error: {args.config} builds a '
                         f'{type(model).__name__}, not a MixMAE model')
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    model.to(args.device).eval()

    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(
            type='ResizeEdge',
            scale=size,
            edge='short',
            backend='pillow',
            interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=size),
        dict(type='PackInputs'),
    ])
    batch = pseudo_collate([
        pipeline(dict(img_path=path))
        for path in (args.image_a, args.image_b)
    ])
    batch['inputs'] = [x.to(args.device) for x in batch['inputs']]
    with torch.no_grad():
        grid = render_model_reconstruction(model, batch, seed=args.seed)
    save_png(grid, args.out)
    print(f'saved {grid.shape[1]}x{grid.shape[0]} reconstruction grid '
          f'({size}px inputs, seed {args.seed}) to {args.out}')
    return args.out


if __name__ == '__main__':
    main()
