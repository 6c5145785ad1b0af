# Copyright (c) OpenMMLab. All rights reserved.
"""The whole MixMAE story on the embedded demo data (README command 1).

Steps, each skipped when its output exists (``--force`` redoes them):
demo data -> MixMAE pretraining -> reconstruction grid and loss / lr
curves -> fine-tuning and evaluation in mmpretrain (classification), mmdet
(Mask R-CNN, COCO format) and mmseg (UperNet, ADE20K layout) -> a summary
table.

Example:
    python tools/misc/run_demo.py --work-dir work_dirs/demo
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'
BENCH = 'configs/mixmae/benchmarks'
TASKS = {
    'classification (mmpretrain)':
    (f'{BENCH}/mmpretrain/swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py',
     'cls', ('accuracy/top1', )),
    'detection (mmdet)':
    (f'{BENCH}/mmdet/mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py',
     'det', ('coco/bbox_mAP', 'coco/segm_mAP')),
    'segmentation (mmseg)':
    (f'{BENCH}/mmseg/'
     'swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py',
     'seg', ('mIoU', 'aAcc')),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-dir', default='data/demo')
    parser.add_argument('--force', action='store_true', help='redo all steps')
    return parser.parse_args()


def run(cmd, log_file):
    """Run a step, streaming its output to the console and a log file."""
    print(f'\n$ {" ".join(cmd)}', flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(log_file, 'w') as log:
        proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            if 'mmengine - INFO' in line or 'Error' in line:
                print(line, end='', flush=True)
        if proc.wait():
            raise SystemExit(
                f'step failed ({proc.returncode}): see {log_file}')


def last_checkpoint(work_dir):
    """Path named by mmengine's ``last_checkpoint`` file, or None."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(marker):
        return None
    path = open(marker).read().strip()
    return path if osp.exists(path) else None


def loss_range(work_dir):
    """First and last logged training loss of a run."""
    test_dir = osp.join(work_dir, 'test')
    logs = sorted(
        osp.join(d, f) for d, _, files in os.walk(work_dir) for f in files
        if f == 'scalars.json' and not d.startswith(test_dir))
    losses = []
    for name in logs[-1:]:
        for line in open(name):
            rec = json.loads(line)
            if 'loss' in rec:
                losses.append(rec['loss'])
    return (losses[0], losses[-1]) if losses else (None, None)


def main():
    args = parse_args()
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    run(['tools/misc/make_demo_data.py', '--out', args.data_dir] +
        (['--force'] if args.force else []),
        osp.join(args.work_dir, 'data.log'))

    pre_dir = osp.join(args.work_dir, 'pretrain')
    pretrain = None if args.force else last_checkpoint(pre_dir)
    if pretrain is None:
        run(['tools/train.py', PRETRAIN, '--work-dir', pre_dir,
             '--cfg-options',
             f'train_dataloader.dataset.data_root={args.data_dir}/imagenet'],
            osp.join(args.work_dir, 'pretrain.log'))
        pretrain = last_checkpoint(pre_dir)
    rows = [('pretraining (MixMAE)', 'loss first -> last',
             '%.3f -> %.3f' % loss_range(pre_dir), pretrain)]

    grid = osp.join(args.work_dir, 'reconstruction.png')
    if args.force or not osp.exists(grid):
        images = []
        for kind in ('circles', 'stripes'):
            folder = osp.join(args.data_dir, 'imagenet', 'train', kind)
            images.append(osp.join(folder, sorted(os.listdir(folder))[0]))
        run(['tools/visualize_reconstruction.py', PRETRAIN, pretrain,
             *images, '--out', grid], osp.join(args.work_dir, 'viz.log'))
    if osp.exists(grid):
        rows.append(('reconstruction grid', '', '', grid))

    curves = osp.join(args.work_dir, 'pretrain_curves.png')
    if args.force or not osp.exists(curves):
        run(['tools/analysis_tools/plot_curves.py', pre_dir, '--out', curves,
             '--title', 'MixMAE demo pretraining'],
            osp.join(args.work_dir, 'curves.log'))
    rows.append(('loss / lr curves', '', '', curves))

    for task, (config, name, keys) in TASKS.items():
        work = osp.join(args.work_dir, name)
        ckpt = None if args.force else last_checkpoint(work)
        if ckpt is None:
            run(['tools/train.py', config, '--work-dir', work,
                 '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={pretrain}'],
                osp.join(args.work_dir, f'{name}.log'))
            ckpt = last_checkpoint(work)
        out = osp.join(work, 'test_metrics.json')
        if args.force or not osp.exists(out):
            run(['tools/test.py', config, ckpt, '--work-dir',
                 osp.join(work, 'test'), '--out', out],
                osp.join(args.work_dir, f'{name}_test.log'))
        metrics = json.load(open(out))
        first, last = loss_range(work)
        rows.append((task, 'loss first -> last', f'{first:.3f} -> {last:.3f}',
                     ckpt))
        for key in keys:
            rows.append(('', key, f'{metrics[key]:.4g}', ''))

    print(f'\nMixMAE demo summary ({time.time() - start:.0f} s)')
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for row in [('step', 'measure', 'value', 'output')] + rows:
        print('  '.join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(f'\npretraining checkpoint: {pretrain}')


if __name__ == '__main__':
    main()
