# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Convert an mmpretrain ``MixMIM`` checkpoint (pretraining ``MixMIM`` or
``ImageClassifier`` with ``MixMIMTransformer``) to mixmae_mm.

mmcv names become the official/timm names mixmae_mm uses, PatchMerging
weights are reordered from mmcv's ``nn.Unfold`` channel order to timm's,
derived tensors are dropped and listed, and any key the converter does not
understand makes it fail (exit status 1).

Example:
    python tools/model_converters/mmpretrain_mixmim_to_mixmae.py \\
        mixmim_mixmim-base_16xb128-coslr-300e_in1k.pth out.pth
"""
import argparse
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

from checkpoint_io import (ConversionError, UnknownKeysError,  # noqa: E402
                           UnsafeCheckpointFileError,
                           convert_mmpretrain_checkpoint, format_report,
                           load_checkpoint_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an mmpretrain MixMIM checkpoint to mixmae_mm')
    parser.add_argument('src', help='mmpretrain checkpoint (.pth)')
    parser.add_argument('dst', help='output path (.pth)')
    parser.add_argument(
        '--num-stages',
        type=int,
        default=4,
        help='encoder stages; the final norm becomes norm{num_stages-1}')
    parser.add_argument(
        '--no-check-derived',
        action='store_true',
        help='do not check that the dropped absolute_pos_embed / '
        'decoder_pos_embed are the fixed sin-cos tables mixmae_mm uses')
    parser.add_argument(
        '--quiet', action='store_true', help='print counts, not every key')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ckpt = load_checkpoint_file(args.src)
        out, report = convert_mmpretrain_checkpoint(
            ckpt,
            args.num_stages,
            check_derived=not args.no_check_derived,
            source=osp.basename(args.src))
    except UnknownKeysError as err:
        print(format_report(err.report, not args.quiet))
        print(f'error: {err}', file=sys.stderr)
        return 1
    except (UnsafeCheckpointFileError, ConversionError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(format_report(report, not args.quiet))
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(out, args.dst)
    print(f"kind: {report['kind']}  arch: {out['meta']['arch']}")
    print(f'saved {len(out["state_dict"])} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
