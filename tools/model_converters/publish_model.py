# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Publish a training checkpoint: drop the optimizer and other resume-only
state, optionally keep only the ``backbone.`` weights, and write
``NAME-<first 8 hex digits of sha256>.pth`` as OpenMMLab model zoos do.

The result holds only a tensor ``state_dict`` and a plain ``meta``, so it
loads with ``torch.load(weights_only=True)`` on any torch (and through
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``).

Example:
    python tools/model_converters/publish_model.py \\
        work_dirs/demo/pretrain/epoch_30.pth \\
        checkpoints/mixmae_swin-tiny_demo.pth --backbone-only
    # -> checkpoints/mixmae_swin-tiny_demo-1a2b3c4d.pth
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import torch

# checkpoint_io.py sits next to this script and mixmae_mm in the repository
# root (if not installed): both importable however the script is loaded.
HERE = osp.dirname(osp.abspath(__file__))
for _path in (HERE, osp.dirname(osp.dirname(HERE))):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from checkpoint_io import (UnknownKeysError,  # noqa: E402
                           UnsafeCheckpointFileError, format_report,
                           load_checkpoint_file, publish_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Strip training state from a checkpoint and add the '
        'sha256 suffix')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument(
        'out_file', help='output name, e.g. out.pth -> out-<sha8>.pth')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='keep only backbone.* weights (prefix kept)')
    parser.add_argument(
        '--strip-field',
        action='append',
        default=[],
        metavar='NAME',
        help='also drop this top-level field (repeatable); unknown fields '
        'are refused otherwise')
    parser.add_argument(
        '--quiet', action='store_true', help='print counts, not every key')
    return parser.parse_args(argv)


def sha256_of(path: str) -> str:
    """Hex sha256 of a file.

    Args:
        path (str): The file.

    Returns:
        str: 64 hex digits.
    """
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha.update(chunk)
    return sha.hexdigest()


def save_weights(weights: dict, out_file: str,
                 sha_suffix: bool = True) -> str:
    """Write ``weights`` as a plain dict of own, contiguous tensors (no
    views of larger storage), check that ``torch.load(weights_only=True)``
    reads it back (as mmdet's and mmseg's loaders do) and name it
    ``OUT-<first 8 hex digits of sha256>.pth`` (or ``out_file`` without
    ``sha_suffix``); the file appears complete or not at all.

    Returns:
        str: The path written.
    """
    out = {k: v.detach().clone().contiguous() for k, v in weights.items()}
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    os.makedirs(osp.dirname(osp.abspath(stem)), exist_ok=True)
    tmp = f'{stem}.tmp.pth'
    torch.save(out, tmp)
    torch.load(tmp, map_location='cpu', weights_only=True)
    final = f'{stem}-{sha256_of(tmp)[:8]}.pth' if sha_suffix else out_file
    os.replace(tmp, final)
    return final


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ckpt = load_checkpoint_file(args.in_file)
        out, report = publish_checkpoint(ckpt, args.backbone_only,
                                         args.strip_field)
    except UnknownKeysError as err:
        print(format_report(err.report, not args.quiet))
        print(f'error: {err}', file=sys.stderr)
        return 1
    except UnsafeCheckpointFileError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(format_report(report, not args.quiet))
    stem = args.out_file[:-4] if args.out_file.endswith('.pth') \
        else args.out_file
    os.makedirs(osp.dirname(osp.abspath(stem)), exist_ok=True)
    tmp = f'{stem}.tmp.pth'
    torch.save(out, tmp)
    # self-check: what we publish must load without any allow-list
    torch.load(tmp, map_location='cpu', weights_only=True)
    final = f'{stem}-{sha256_of(tmp)[:8]}.pth'
    os.replace(tmp, final)
    print(f'saved {len(out["state_dict"])} tensors to {final}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
