# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Export a MixMAE-pretrained PVTv2 backbone in the original PVTv2 release
format (whai362/PVT ``pvt_v2.py`` keys), so that every mmdet PVTv2 config
uses it by changing only ``init_cfg.checkpoint`` (mmdet converts release
keys itself with ``pvt_convert``; ``convert_weights=True`` is its default).

The input is a Runner checkpoint (``state_dict``, ``meta``, ``optimizer``
...) or a bare state dict; only the keys under ``--prefix`` are exported
(``neck.``/``head.`` and the other fields are listed as dropped), any
other key under it makes the tool fail (exit status 1). The output is a
plain dict of tensors (``torch.load(weights_only=True)`` reads it, as
mmdet's loader does), named ``OUT-<first 8 hex digits of sha256>.pth`` as
``publish_model.py`` names files. When mmdet is installed, its own
``pvt_convert`` is applied to the result, which must give back every
source tensor.

Example:
    python tools/model_converters/mixmae_pvtv2_to_release.py \\
        work_dirs/mixmae_pvtv2-b0/epoch_300.pth \\
        checkpoints/mixmae_pvtv2_b0.pth
    # -> checkpoints/mixmae_pvtv2_b0-1a2b3c4d.pth; then in an mmdet config:
    # model.backbone.init_cfg = dict(checkpoint='checkpoints/mixmae_...')
"""
import argparse
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
                           UnsafeCheckpointFileError, format_report,
                           load_checkpoint_file)
from publish_model import save_weights  # noqa: E402

from mixmae_mm.models.utils.ckpt_convert import new_report  # noqa: E402
from mixmae_mm.models.utils.pvt_convert import pvtv2_to_release  # noqa: E402

RELEASE = 'the original PVTv2 release (whai362/PVT pvt_v2.py)'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a PVTv2 backbone in the original release format '
        'that mmdet PVTv2 configs load')
    parser.add_argument('in_file', help='Runner checkpoint or state dict')
    parser.add_argument(
        'out_file', help='output name, e.g. out.pth -> out-<sha8>.pth')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help="the backbone's keys start with this (default: backbone.; "
        "'' for a bare backbone state dict)")
    parser.add_argument(
        '--no-sha-suffix',
        action='store_true',
        help='write OUT as given, without the sha256 suffix')
    parser.add_argument(
        '--quiet', action='store_true', help='print counts, not every key')
    return parser.parse_args(argv)


def split_weights(checkpoint, report):
    """The state dict of a Runner checkpoint (other fields listed as
    dropped: a release holds weights only) or a bare state dict.

    Args:
        checkpoint (dict): The loaded file.
        report (dict): Gets ``[field] NAME`` entries in ``dropped``.

    Returns:
        dict: The state dict.

    Raises:
        UnknownKeysError: If it is neither.
    """
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        report['dropped'] += [f'[field] {k}' for k in checkpoint
                              if k != 'state_dict']
        return checkpoint['state_dict']
    if isinstance(checkpoint, dict) and checkpoint and all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    fields = sorted(checkpoint) if isinstance(checkpoint, dict) else []
    raise UnknownKeysError(
        'not a checkpoint: no `state_dict` field and not a dict of tensors '
        f'(fields: {fields})', fields, report)


def mmdet_round_trip(release, state_dict, prefix):
    """Keys where mmdet's own ``pvt_convert`` of ``release`` differs from
    the source backbone weights (empty: mmdet loads exactly them), or None
    without mmdet.

    Args:
        release (dict): The exported state dict.
        state_dict (dict): The source, keys under ``prefix``.
        prefix (str): The backbone's prefix.

    Returns:
        list[str] | None: The differing keys (mmdet names).
    """
    try:
        from mmdet.models.backbones.pvt import pvt_convert
    except ImportError:
        return None
    back = pvt_convert(release)
    src = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    return sorted(set(src) ^ set(back)) + [
        k for k in src if k in back and (back[k].shape != src[k].shape
                                         or not torch.equal(back[k], src[k]))
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    report = new_report()
    try:
        ckpt = load_checkpoint_file(args.in_file)
        state_dict = split_weights(ckpt, report)
        release, conv = pvtv2_to_release(state_dict, args.prefix)
    except UnknownKeysError as err:
        err.report['dropped'][:0] = report['dropped']
        print(format_report(err.report, not args.quiet))
        print(f'error: {err}', file=sys.stderr)
        return 1
    except (UnsafeCheckpointFileError, ConversionError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    conv['dropped'][:0] = report['dropped']
    print(format_report(conv, not args.quiet))
    diff = mmdet_round_trip(release, state_dict, args.prefix)
    if diff:
        print(f'error: mmdet pvt_convert of the export differs from the '
              f'source at {diff}', file=sys.stderr)
        return 1
    print('mmdet pvt_convert round trip: ' +
          ('skipped (mmdet not installed)' if diff is None else 'exact'))
    final = save_weights(release, args.out_file, not args.no_sha_suffix)
    print(f'saved {len(release)} tensors in {RELEASE} format to {final}')
    print(f"mmdet: model.backbone.init_cfg = dict(checkpoint='{final}')")
    return 0


if __name__ == '__main__':
    sys.exit(main())
