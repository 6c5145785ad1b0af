# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Convert an official Sense-X/MixMIM (MixMAE) checkpoint to mixmae_mm.

Pretraining checkpoints (``mask_token``, ``decoder_*``) become
``backbone.``/``neck.`` weights of :class:`MixMAE`; fine-tuned ones
(``head.*``) become ``backbone.``/``head.fc.`` weights of an mmpretrain
``ImageClassifier`` (``MixMAESwin`` + ``GlobalAveragePooling`` +
``LinearClsHead``). Derived tensors are dropped and listed. Any key the
converter does not understand makes it fail (exit status 1).

Official checkpoints pickle ``argparse.Namespace`` under ``'args'``; this
tool loads with the package's restricted unpickler (an explicit allow-list,
on every supported torch) and allows that class only with ``--trusted``.

Example:
    python tools/model_converters/mixmim_official_to_mixmae.py \\
        mixmim_base_600ep.pth checkpoints/mixmae_swin-base_600ep.pth --trusted
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
                           convert_official_checkpoint, format_report,
                           load_checkpoint_file)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official MixMIM/MixMAE checkpoint '
        '(pretraining or fine-tuned) to mixmae_mm keys')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output path (.pth)')
    parser.add_argument(
        '--trusted',
        action='store_true',
        help='allow argparse.Namespace (the pickled training args of '
        'official checkpoints) while loading; only for files you trust')
    parser.add_argument(
        '--no-check-derived',
        action='store_true',
        help='do not check that the dropped position tables / indices are '
        'the standard ones')
    parser.add_argument(
        '--quiet', action='store_true', help='print counts, not every key')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ckpt = load_checkpoint_file(args.src, trusted=args.trusted)
        out, report = convert_official_checkpoint(
            ckpt,
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
    arch = out['meta']['arch']
    print(f"kind: {report['kind']}  arch: {arch}")
    print(f'saved {len(out["state_dict"])} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
