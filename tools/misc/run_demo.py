# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""The whole MixMAE story on the embedded demo data (README command 1).

Steps, each skipped when its output exists (``--force`` redoes them):
demo data -> MixMAE pretraining -> reconstruction grid and loss / lr
curves -> fine-tuning and evaluation in mmpretrain (classification, from
the pretrained encoder and, with the same config and budget, from a
randomly initialised one), mmdet (Mask R-CNN, COCO format) and mmseg
(UperNet, ADE20K layout) -> a summary table with the wall time of each step
(``--readme docs/en/demo.md`` also writes it into that documentation
page, between its summary markers).

Example:
    python tools/misc/run_demo.py --work-dir work_dirs/demo
    python tools/misc/run_demo.py --force --readme docs/en/demo.md
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import time
from importlib import metadata

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'
BENCH = 'configs/mixmae/benchmarks'
#: work-dir name -> (config, step name, label in the summary, metric keys
#: and their labels)
TASKS = {
    'cls':
    (f'{BENCH}/mmpretrain/swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py',
     'classification', 'classification (mmpretrain, 4 classes, chance 25%)',
     (('accuracy/top1', 'top-1 (%)'), )),
    'det':
    (f'{BENCH}/mmdet/mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py',
     'detection', 'detection (mmdet Mask R-CNN, 3 classes)',
     (('coco/bbox_mAP', 'bbox mAP'), ('coco/segm_mAP', 'mask mAP'))),
    'seg': (f'{BENCH}/mmseg/'
            'swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py',
            'segmentation', 'segmentation (mmseg UperNet, 11 classes)',
            (('mIoU', 'mIoU (%)'), ('aAcc', 'aAcc (%)'))),
}
#: Tasks also fine-tuned from a randomly initialised encoder: the same config
#: with the backbone's ``init_cfg`` (the checkpoint load) removed.
RANDOM_INIT = ('cls', )
MARKER = 'demo-summary'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-dir', default='data/demo')
    parser.add_argument('--force', action='store_true', help='redo all steps')
    parser.add_argument(
        '--readme', default=None,
        help=f'also put the summary into this file between the lines '
        f'<!-- {MARKER}:start --> and <!-- {MARKER}:end -->')
    args = parser.parse_args()
    if args.readme:
        # fail before minutes of training, not after
        check_markers(args.readme)
    return args


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


class Timer:
    """Wall time per step in seconds; a reused step is recorded as None."""

    def __init__(self):
        self.seconds = {}

    def step(self, name, needed, fn):
        """Call ``fn`` when ``needed`` and record its time under ``name``."""
        if not needed:
            self.seconds[name] = None
            return
        start = time.time()
        fn()
        self.seconds[name] = time.time() - start


def last_checkpoint(work_dir):
    """Path named by mmengine's ``last_checkpoint`` file, or None."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(marker):
        return None
    path = open(marker).read().strip()
    return path if osp.exists(path) else None


def loss_range(work_dir):
    """First and last logged training loss of the newest run in
    ``work_dir``, or ``(None, None)``."""
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


def majority_class_scores(ade_root, split='validation'):
    """mIoU and aAcc (%) that mmseg's ``IoUMetric`` gives a constant
    prediction of the most frequent class of ``split`` (labels as
    ``ADE20KDataset`` loads them, 0 -> ignored): the score of a model that
    learned nothing but the class prior."""
    import numpy as np
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmseg.datasets import ADE20KDataset
    from mmseg.evaluation import IoUMetric
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if not glob.glob(osp.join(ade_root, 'annotations', split, '*.png')):
        raise ValueError(f'no {split} label maps (*.png) under '
                         f'{osp.join(ade_root, "annotations", split)}')
    with DefaultScope.overwrite_default_scope('mmseg'):
        # the dataset passes reduce_zero_label=True to LoadAnnotations
        dataset = ADE20KDataset(
            data_root=ade_root,
            data_prefix=dict(
                img_path=f'images/{split}',
                seg_map_path=f'annotations/{split}'),
            pipeline=[dict(type='LoadAnnotations')])
        maps = [dataset[i]['gt_seg_map'] for i in range(len(dataset))]
    num_classes = len(dataset.metainfo['classes'])
    counts = sum(
        np.bincount(m[m != 255].ravel(), minlength=num_classes)
        for m in maps)
    majority = int(counts.argmax())
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [
        dict(
            pred_sem_seg=dict(data=torch.full((1, *m.shape), majority)),
            gt_sem_seg=dict(data=torch.from_numpy(m.astype(np.int64))[None]))
        for m in maps
    ])
    # IoUMetric prints its 150-row table to the current logger: keep it quiet
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        res = metric.compute_metrics(metric.results)
    finally:
        logger.setLevel(level)
    return dict(
        mIoU=res['mIoU'],
        aAcc=res['aAcc'],
        label=dataset.metainfo['classes'][majority])


def machine():
    """CPU model, core count and torch version, in words."""
    cpu = platform.processor() or platform.machine()
    if osp.exists('/proc/cpuinfo'):
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    threads = os.environ.get('OMP_NUM_THREADS', 'unset')
    return (f'{cpu}, {os.cpu_count()} CPU cores, no GPU used, '
            f'OMP_NUM_THREADS={threads}, torch {metadata.version("torch")}, '
            f'{platform.system()}')


def fmt(value, digits=3):
    """``value`` with ``digits`` decimals, or a dash for a missing one."""
    return '—' if value is None else f'{value:.{digits}f}'


def summary_table(rows, timer, load, seconds, command, baseline):
    """The summary as Markdown: a table and a paragraph on time, machine
    and load. ``rows`` holds (step, measure, pretrained, random-init);
    ``baseline`` is :func:`majority_class_scores`'s result."""
    lines = [
        '| step | measure | MixMAE-pretrained encoder | '
        'random-init encoder |', '|---|---|---|---|'
    ]
    lines += [f'| {" | ".join(row)} |' for row in rows]
    done = [f'{name} {s:.0f} s' for name, s in timer.seconds.items()
            if s is not None]
    reused = [name for name, s in timer.seconds.items() if s is None]
    lines += [
        '',
        f'Made by `{command}` on {datetime.date.today().isoformat()}: '
        f'{seconds:.0f} s in all ({seconds / 60:.1f} min; '
        + ', '.join(done) + ')'
        + (f'; reused from an earlier run: {", ".join(reused)}'
           if reused else '')
        + f'. Machine: {machine()}; 1-minute load average '
        f'{load[0]:.1f} before and {load[1]:.1f} after the run (before: '
        f'other jobs only; near or above the core count, others shared the '
        f'machine and the times are inflated). Random init: the same '
        f'fine-tuning config and budget with the backbone\'s `init_cfg` '
        f'removed. Segmentation baseline: predicting the validation set\'s '
        f'majority class ("{baseline["label"]}") everywhere scores mIoU '
        f'{baseline["mIoU"]:.2f} / aAcc {baseline["aAcc"]:.2f} with the same '
        f'`IoUMetric`.'
    ]
    return '\n'.join(lines) + '\n'


def check_markers(path):
    """Raise SystemExit unless ``path`` holds the summary markers once."""
    text = open(path).read()
    for m in (f'<!-- {MARKER}:start -->', f'<!-- {MARKER}:end -->'):
        if text.count(m) != 1:
            raise SystemExit(f'{path} must hold the line {m} exactly once')


def update_readme(path, table):
    """Replace what stands between the summary markers in ``path``."""
    check_markers(path)
    start, end = f'<!-- {MARKER}:start -->', f'<!-- {MARKER}:end -->'
    text = open(path).read()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, 'w') as f:
        f.write(head + start + '\n' + table + end + tail)


def init_options(pretrain, random_init):
    """``--cfg-options`` that start a fine-tuning config's encoder from the
    checkpoint ``pretrain``, or from its own random init (no load)."""
    if random_init:
        return ['model.backbone.init_cfg=None']
    return [f'model.backbone.init_cfg.checkpoint={pretrain}']


def finetune(args, timer, name, config, pretrain, random_init):
    """Fine-tune and test one task; returns (metrics, loss range, ckpt)."""
    work = osp.join(args.work_dir, name + ('_random' if random_init else ''))
    tag = osp.basename(work)
    step = TASKS[name][1] + (' (random init)' if random_init else '')
    init = init_options(pretrain, random_init)
    ckpt = None if args.force else last_checkpoint(work)
    timer.step(
        step, ckpt is None, lambda: run(
            ['tools/train.py', config, '--work-dir', work, '--cfg-options',
             *init], osp.join(args.work_dir, f'{tag}.log')))
    ckpt = last_checkpoint(work)
    out = osp.join(work, 'test_metrics.json')
    timer.step(
        f'{step} test', args.force or not osp.exists(out), lambda: run(
            ['tools/test.py', config, ckpt, '--work-dir',
             osp.join(work, 'test'), '--out', out],
            osp.join(args.work_dir, f'{tag}_test.log')))
    return json.load(open(out)), loss_range(work), ckpt


def main():
    args = parse_args()
    start = time.time()
    load_before = os.getloadavg()[0]
    timer = Timer()
    os.makedirs(args.work_dir, exist_ok=True)
    timer.step(
        'data', True, lambda: run(
            ['tools/misc/make_demo_data.py', '--out', args.data_dir] +
            (['--force'] if args.force else []),
            osp.join(args.work_dir, 'data.log')))

    pre_dir = osp.join(args.work_dir, 'pretrain')
    pretrain = None if args.force else last_checkpoint(pre_dir)
    timer.step(
        'pretraining', pretrain is None, lambda: run(
            ['tools/train.py', PRETRAIN, '--work-dir', pre_dir,
             '--cfg-options',
             f'train_dataloader.dataset.data_root={args.data_dir}/imagenet'],
            osp.join(args.work_dir, 'pretrain.log')))
    pretrain = last_checkpoint(pre_dir)
    outputs = [('pretraining checkpoint', pretrain)]

    grid = osp.join(args.work_dir, 'reconstruction.png')
    images = []
    for kind in ('circles', 'stripes'):
        folder = osp.join(args.data_dir, 'imagenet', 'train', kind)
        images.append(osp.join(folder, sorted(os.listdir(folder))[0]))
    timer.step(
        'reconstruction grid', args.force or not osp.exists(grid),
        lambda: run(['tools/visualize_reconstruction.py', PRETRAIN, pretrain,
                     *images, '--out', grid],
                    osp.join(args.work_dir, 'viz.log')))
    outputs.append(('reconstruction grid', grid))
    curves = osp.join(args.work_dir, 'pretrain_curves.png')
    timer.step(
        'curves', args.force or not osp.exists(curves), lambda: run(
            ['tools/analysis_tools/plot_curves.py', pre_dir, '--out', curves,
             '--title', 'MixMAE demo pretraining'],
            osp.join(args.work_dir, 'curves.log')))
    outputs.append(('loss / lr curves', curves))

    rows = [('pretraining (MixMAE)', 'loss first -> last',
             '%s -> %s' % tuple(map(fmt, loss_range(pre_dir))), '—')]
    for name, (config, _, label, keys) in TASKS.items():
        inits = [False] + [True] * (name in RANDOM_INIT)
        results = [finetune(args, timer, name, config, pretrain, r)
                   for r in inits]
        outputs += [(f'{name} checkpoint' + (' (random init)' if r else ''),
                     res[2]) for r, res in zip(inits, results)]
        cells = [
            '%s -> %s' % tuple(map(fmt, res[1])) for res in results
        ] + ['not run'] * (2 - len(results))
        rows.append((label, 'training loss first -> last', *cells))
        for key, measure in keys:
            cells = [f'{res[0][key]:.2f}' if '%' in measure else
                     f'{res[0][key]:.3f}' for res in results]
            rows.append(('', measure, *cells,
                         *(['not run'] * (2 - len(results)))))
    baseline = majority_class_scores(
        osp.join(args.data_dir, 'ade', 'ADEChallengeData2016'))

    seconds = time.time() - start
    command = 'python tools/misc/run_demo.py ' + ' '.join(sys.argv[1:])
    table = summary_table(rows, timer, (load_before, os.getloadavg()[0]),
                          seconds, command.strip(), baseline)
    print(f'\nMixMAE demo summary\n\n{table}')
    for what, path in outputs:
        print(f'{what}: {path}')
    if args.readme:
        update_readme(args.readme, table)
        print(f'summary written into {args.readme}')


if __name__ == '__main__':
    main()
