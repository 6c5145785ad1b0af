# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Export a MixMAE-pretrained Twins backbone (``MixMAETwins``) for the
toolboxes' own Twins classes, so that their configs use it by changing only
the checkpoint:

* ``--to mmseg`` (default): mmseg's ``PCPVT`` / ``SVT`` (its ADE20K
  configs, and mmdet configs that build mmseg's class):
  ``model.backbone.init_cfg = dict(type='Pretrained', checkpoint=OUT)``;
* ``--to mmpretrain``: mmpretrain's ``PCPVT`` / ``SVT`` (``stages``,
  separate ``q``/``kv``); load it with
  ``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')``
  on the classifier or ``checkpoint=OUT`` on the backbone. SVT needs
  ``norm_after_stage=True`` there (MixMAE's SVT has mmseg's four stage
  norms; mmpretrain's configs keep only the last).

The input is a Runner checkpoint or a bare state dict; only keys under
``--prefix`` are exported (others listed as dropped), any other key under
it makes the tool fail (exit status 1). The output is a plain dict of
tensors (``torch.load(weights_only=True)`` reads it), named
``OUT-<first 8 hex digits of sha256>.pth`` unless ``--no-sha-suffix``.

Example:
    python tools/model_converters/mixmae_twins_export.py \\
        work_dirs/mixmae_twins-svt-b_16xb128-amp-coslr-300e_in1k/epoch_300.pth \\
        checkpoints/svt-b_mixmae-mmseg.pth --to mmseg
"""
import argparse
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
for _path in (HERE, osp.dirname(osp.dirname(HERE))):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from checkpoint_io import (ConversionError, UnknownKeysError,  # noqa: E402
                           UnsafeCheckpointFileError, format_report,
                           load_checkpoint_file)
from mixmae_pvtv2_to_release import split_weights  # noqa: E402
from publish_model import save_weights  # noqa: E402

from mixmae_mm.models.utils.ckpt_convert import new_report  # noqa: E402
from mixmae_mm.models.utils.twins_convert import (TARGETS,  # noqa: E402
                                                  export_twins)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a MixMAE Twins backbone for mmseg or mmpretrain')
    parser.add_argument('in_file', help='Runner checkpoint or state dict')
    parser.add_argument(
        'out_file', help='output name, e.g. out.pth -> out-<sha8>.pth')
    parser.add_argument('--to', choices=TARGETS, default='mmseg',
                        help='target layout (default: mmseg)')
    parser.add_argument(
        '--prefix', default='backbone.',
        help="the backbone's keys start with this (default: backbone.; "
        "'' for a bare backbone state dict)")
    parser.add_argument('--no-sha-suffix', action='store_true',
                        help='write OUT as given, without the sha suffix')
    parser.add_argument('--quiet', action='store_true',
                        help='print counts, not every key')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = new_report()
    try:
        ckpt = load_checkpoint_file(args.in_file)
        state_dict = split_weights(ckpt, report)
        exported, conv = export_twins(state_dict, args.to, args.prefix)
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
    final = save_weights(exported, args.out_file, not args.no_sha_suffix)
    print(f'saved {len(exported)} tensors in {args.to} Twins layout to '
          f'{final}')
    print(f"{args.to}: model.backbone.init_cfg = dict(type='Pretrained', "
          f"checkpoint='{final}')")
    return 0


if __name__ == '__main__':
    sys.exit(main())
