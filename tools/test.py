# Copyright (c) OpenMMLab. All rights reserved.
# Derived from mmpretrain 1.2.0's tools/test.py
# (Apache License 2.0) by the mixmae_mm contributors.
"""Evaluate a checkpoint with mmengine's Runner (mmpretrain, mmdet or mmseg
configs that use mixmae_mm modules).

Example:
    python tools/test.py CONFIG CHECKPOINT --work-dir work_dirs/eval
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mixmae_mm  # noqa: F401  (registers the MixMAE modules)
from mixmae_mm.engine import apply_checkpoint_trust, setup_cpu_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument(
        '--out', help='dump the metrics to this json/pkl/yaml file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy format')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    apply_checkpoint_trust(cfg)
    setup_cpu_distributed(cfg)
    # the weights come from the checkpoint: skip the backbone's pretrained
    # init (its file need not exist where the evaluation runs)
    backbone = cfg.get('model', {}).get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict):
        backbone['init_cfg'] = None
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)
    print(metrics)


if __name__ == '__main__':
    main()
