# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Toy-scale reproduction of MixMAE's claims on 2 CPU cores.

On the generated toy-shapes set (``tools/misc/demo_data.py``, 8 shape
classes at 96 px, 2000 unlabelled + 100 labelled images per class) it
pretrains the same tiny ``MixMAESwin`` with MixMAE and with a SimMIM-style
mask-token baseline (1500 iterations by default: 1000 left the seed
ranges of the three rows overlapping), fine-tunes each encoder
and a randomly initialised one with one recipe, fits a linear probe on the
frozen features, repeats over seeds and writes a Markdown table, a JSON
file and a bar chart. On request (``--encoders``) it runs three MixMAE
ablations (``no_masked_attn``, ``single_recon``, ``mask_stride4``) and the
same comparison on a tiny ``MixMAEPVTv2`` (``pvtv2_random``,
``pvtv2_mixmae``). Every run is a real mmengine ``Runner`` on the configs
in ``configs/mixmae/toy/``. Finished runs are reused (``--force`` redoes
them).

Example:
    python tools/experiments/toy_reproduction.py            # ~28 min idle
    python tools/experiments/toy_reproduction.py --smoke    # seconds
"""
import argparse
import contextlib
import copy
import hashlib
import json
import os
import os.path as osp
import platform
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
# the demo/toy data generator lives with the tools: tools/misc/demo_data.py
sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))

import torch  # noqa: E402
from demo_data import TOY_CLASSES, make_imagenet_folder  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mixmae_mm  # noqa: E402,F401  (registers the modules)
from mixmae_mm.evaluation import (extract_features,  # noqa: E402
                                  linear_probe_accuracy)

CFG_DIR = osp.join(ROOT, 'configs', 'mixmae', 'toy')
#: (key, label, pretraining config) in table order; None = random init.
#: The default rows: the paper's main comparison.
ENCODERS = [
    ('random', 'Random init (no pretraining)', None),
    ('simmim', 'SimMIM-style: [MASK] tokens in the encoder, ratio 0.6',
     'simmim_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'),
    ('mixmae', 'MixMAE (stride-32 mask, masked attention, dual)',
     'mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'),
]
#: MixMAE ablations, on request only (``--encoders``): three more
#: pretraining runs per seed would not fit the default run's 30 minutes.
ABLATION_ENCODERS = [
    ('no_masked_attn', 'MixMAE, masked self-attention off',
     'mixmae_swin-toy-w6_no-masked-attn_1xb32-1000i_toyshapes-96px.py'),
    ('single_recon', 'MixMAE, single reconstruction',
     'mixmae_swin-toy-w6_single-recon_1xb32-1000i_toyshapes-96px.py'),
    ('mask_stride4', 'MixMAE, mask on the stride-4 grid',
     'mixmae_swin-toy-w6_mask-stride4_1xb32-1000i_toyshapes-96px.py'),
]
#: Rows on request only (not in the default set): the same comparison on a
#: tiny MixMAEPVTv2, fine-tuned with the same recipe.
PVTV2_ENCODERS = [
    ('pvtv2_random', 'PVTv2: random init (no pretraining)', None),
    ('pvtv2_mixmae', 'PVTv2: MixMAE (stride-32 mask, masked attention, '
     'dual)', 'mixmae_pvtv2-toy_1xb32-1000i_toyshapes-96px.py'),
]
#: The same on a tiny MixMAETwins (SVT), on request only.
TWINS_ENCODERS = [
    ('twins_random', 'Twins-SVT: random init (no pretraining)', None),
    ('twins_mixmae', 'Twins-SVT: MixMAE (stride-32 mask, masked attention, '
     'dual)', 'mixmae_twins-svt-toy_1xb32-1000i_toyshapes-96px.py'),
]
ALL_ENCODERS = ENCODERS + ABLATION_ENCODERS + PVTV2_ENCODERS + \
    TWINS_ENCODERS
FINETUNE_CFG = 'swin-toy-w6_1xb32-100i_toyshapes-96px.py'
#: Fine-tuning configs of the rows whose encoder is not the toy Swin.
FINETUNE_CFGS = {
    **{key: 'pvtv2-toy_1xb32-100i_toyshapes-96px.py'
       for key, _, _ in PVTV2_ENCODERS},
    **{key: 'twins-svt-toy_1xb32-100i_toyshapes-96px.py'
       for key, _, _ in TWINS_ENCODERS},
}
#: Data set sizes: full run and smoke run.
DATA = dict(
    full=dict(num_train=100, num_val=50, num_unlabelled=2000, size=96),
    smoke=dict(num_train=2, num_val=2, num_unlabelled=32, size=96))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--work-dir', help='defaults to work_dirs/toy_reproduction[_smoke]')
    parser.add_argument(
        '--data-root', help='defaults to data/toy_shapes[_smoke]')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    # the configs hold 1000 iterations (their own schedule, used as is by
    # tools/train.py); the reproduction runs them longer
    parser.add_argument('--pretrain-iters', type=int, default=1500)
    parser.add_argument('--finetune-iters', type=int, default=100)
    parser.add_argument(
        '--out',
        help='writes OUT.md, OUT.json and OUT.png; defaults to '
        'docs/toy_reproduction (smoke: WORK_DIR/toy_reproduction)')
    parser.add_argument(
        '--readme', default=None,
        help='also put the table into this file between the lines '
        '<!-- NAME:start --> and <!-- NAME:end -->, NAME the base name of '
        'OUT with - for _ (toy-reproduction by default)')
    parser.add_argument(
        '--smoke', action='store_true',
        help='a few iterations on a tiny set, one seed: checks the wiring')
    parser.add_argument(
        '--encoders', nargs='+',
        choices=[k for k, _, _ in ALL_ENCODERS],
        default=[k for k, _, _ in ENCODERS],
        help='the rows (default: random simmim mixmae; ablations: '
        'no_masked_attn single_recon mask_stride4; PVTv2: pvtv2_random '
        'pvtv2_mixmae; Twins: twins_random twins_mixmae)')
    parser.add_argument(
        '--finetune-options', nargs='+', action=DictAction, default={},
        metavar='KEY=VALUE',
        help='config overrides of the fine-tuning runs only, for controlled '
        'studies (e.g. optim_wrapper.paramwise_cfg.layer_decay_rate=1.0); '
        'their runs get their own work dirs, pretraining runs are shared')
    parser.add_argument('--force', action='store_true', help='redo all runs')
    parser.add_argument(
        '--verbose', action='store_true', help='full mmengine logs on the '
        'console (they always go to each run\'s work dir)')
    args = parser.parse_args()
    suffix = '_smoke' if args.smoke else ''
    args.work_dir = args.work_dir or f'work_dirs/toy_reproduction{suffix}'
    args.data_root = args.data_root or f'data/toy_shapes{suffix}'
    if args.smoke:
        args.seeds = args.seeds[:1]
        args.pretrain_iters = min(args.pretrain_iters, 2)
        args.finetune_iters = min(args.finetune_iters, 2)
    args.out = args.out or (osp.join(args.work_dir, 'toy_reproduction')
                            if args.smoke else 'docs/toy_reproduction')
    if args.pretrain_iters < 1 or args.finetune_iters < 1:
        parser.error('--pretrain-iters and --finetune-iters must be >= 1')
    return args


def make_data(root: str, smoke: bool) -> dict:
    """Generate the toy set unless ``root`` holds one of the same spec."""
    spec = dict(DATA['smoke' if smoke else 'full'], classes=TOY_CLASSES,
                seed=0, style='toy')
    stamp = osp.join(root, 'spec.json')
    if osp.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == dict(spec, classes=list(TOY_CLASSES)):
                return spec
        raise SystemExit(f'{root} holds a toy set of another spec ({stamp});'
                         f' remove it or pass another --data-root')
    print(f'writing the toy-shapes set to {root}', flush=True)
    make_imagenet_folder(root, **spec)
    with open(stamp, 'w') as f:
        json.dump(dict(spec, classes=list(TOY_CLASSES)), f)
    return spec


def set_iters(cfg: Config, iters: int) -> None:
    """Set the length of an iteration-based config, schedule included."""
    warmup = max(1, iters // 10)
    cfg.train_cfg.max_iters = iters
    if 'val_interval' in cfg.train_cfg:
        cfg.train_cfg.val_interval = iters
    cfg.param_scheduler[0].end = warmup
    cfg.param_scheduler[1].begin = warmup
    cfg.param_scheduler[1].end = max(iters, warmup + 1)
    if cfg.default_hooks.checkpoint.interval > 0:
        cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = min(50, iters)


def base_cfg(name: str, work_dir: str, seed: int, data_root: str,
             iters: int) -> Config:
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    cfg.work_dir = work_dir
    cfg.experiment_name = osp.basename(work_dir)
    cfg.randomness = dict(seed=seed, deterministic=False)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if key in cfg:
            cfg[key].dataset.data_root = data_root
    set_iters(cfg, iters)
    return cfg


@contextlib.contextmanager
def console(work_dir: str, verbose: bool):
    """Send a run's console output to ``work_dir/console.log`` (and keep
    it on the console with ``verbose``)."""
    if verbose:
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'console.log'), 'w') as f, \
            contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield


def cached(result: str, run: dict, force: bool):
    """The stored result of a finished run made with the same settings
    ``run``, or None."""
    if force or not osp.exists(result):
        return None
    with open(result) as f:
        out = json.load(f)
    return out if out.get('run') == run else None


def pretrain(key, cfg_name, seed, args):
    """Pretrain one encoder; returns (checkpoint, dict with the final
    loss and the seconds taken)."""
    work_dir = osp.join(args.work_dir, f'pretrain_{key}_seed{seed}')
    ckpt = osp.join(work_dir, f'iter_{args.pretrain_iters}.pth')
    result = osp.join(work_dir, 'result.json')
    run = dict(config=cfg_name, iters=args.pretrain_iters, seed=seed,
               data_root=osp.abspath(args.data_root))
    out = cached(result, run, args.force)
    if out is not None and osp.exists(ckpt):
        return ckpt, out
    cfg = base_cfg(cfg_name, work_dir, seed, args.data_root,
                   args.pretrain_iters)
    start = time.time()
    with console(work_dir, args.verbose):
        runner = Runner.from_cfg(cfg)
        runner.train()
    out = dict(
        loss=runner.message_hub.get_scalar('train/loss').current(),
        seconds=time.time() - start,
        run=run)
    with open(result, 'w') as f:
        json.dump(out, f)
    return ckpt, out


def finetune(key, ckpt, seed, args, num_classes):
    """Fine-tune and linear-probe one encoder; returns the accuracies."""
    options = args.finetune_options
    suffix = ''
    if options:  # one work dir per set of overrides
        suffix = '_' + hashlib.sha256(json.dumps(
            options, sort_keys=True).encode()).hexdigest()[:8]
    work_dir = osp.join(args.work_dir, f'finetune_{key}_seed{seed}{suffix}')
    result = osp.join(work_dir, 'result.json')
    cfg_name = FINETUNE_CFGS.get(key, FINETUNE_CFG)
    run = dict(config=cfg_name, iters=args.finetune_iters, seed=seed,
               data_root=osp.abspath(args.data_root),
               checkpoint=ckpt and osp.abspath(ckpt))
    if options:
        run['options'] = options
    out = cached(result, run, args.force)
    if out is not None:
        return out
    cfg = base_cfg(cfg_name, work_dir, seed, args.data_root,
                   args.finetune_iters)
    cfg.merge_from_dict(options)
    cfg.model.head.num_classes = num_classes
    cfg.data_preprocessor.num_classes = num_classes
    if ckpt is not None:
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    start = time.time()
    with console(work_dir, args.verbose):
        runner = Runner.from_cfg(cfg)
        # linear probe first, on the encoder as pretraining left it
        model = runner.model
        model.init_weights()
        probe_cfg = copy.deepcopy(cfg.val_dataloader)
        probe_cfg.dataset.ann_file = 'meta/train.txt'
        probe_cfg.dataset.data_prefix = 'train'
        train_x, train_y = extract_features(
            model, Runner.build_dataloader(probe_cfg, seed=seed))
        val_x, val_y = extract_features(
            model, Runner.build_dataloader(cfg.val_dataloader, seed=seed))
        probe = linear_probe_accuracy(train_x, train_y, val_x, val_y,
                                      num_classes)
        runner.train()  # evaluates once, after the last iteration
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    out = dict(
        finetune_top1=float(top1),
        probe_top1=probe,
        seconds=time.time() - start,
        run=run)
    os.makedirs(work_dir, exist_ok=True)
    with open(result, 'w') as f:
        json.dump(out, f)
    return out


def mean_std(values):
    t = torch.tensor(values, dtype=torch.float64)
    std = t.std().item() if len(values) > 1 else 0.
    return t.mean().item(), std


def write_outputs(results, encoders, args, spec, seconds):
    """Markdown table, JSON and bar chart."""
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    rows = []
    for key, label, _ in encoders:
        runs = results[key]
        ft = mean_std([r['finetune_top1'] for r in runs])
        lp = mean_std([r['probe_top1'] for r in runs])
        losses = [r['pretrain_loss'] for r in runs
                  if r.get('pretrain_loss') is not None]
        rows.append(dict(key=key, label=label, finetune=ft, probe=lp,
                         finetune_runs=[r['finetune_top1'] for r in runs],
                         probe_runs=[r['probe_top1'] for r in runs],
                         pretrain_loss=mean_std(losses) if losses else None))
    cmd = 'python tools/experiments/toy_reproduction.py ' + ' '.join(
        a for a in sys.argv[1:])
    n = len(args.seeds)
    lines = [
        f'Toy-shapes set: {len(TOY_CLASSES)} classes at {spec["size"]} px, '
        f'{spec["num_unlabelled"]} unlabelled images for pretraining, '
        f'{spec["num_train"]} labelled per class for fine-tuning and the '
        f'probe, {spec["num_val"]} per class for evaluation. '
        f'Pretraining {args.pretrain_iters} iterations x 32 images, '
        f'fine-tuning {args.finetune_iters} x 32; top-1 in %, mean ± std '
        f'over {n} seed{"s" * (n > 1)} ({", ".join(map(str, args.seeds))}).',
        '',
        '| encoder | fine-tune top-1 | linear probe top-1 | final pretraining'
        ' loss | fine-tune top-1 per seed | linear probe top-1 per seed |',
        '|---|---|---|---|---|---|',
    ]
    for r in rows:
        loss = '—' if r['pretrain_loss'] is None else \
            f'{r["pretrain_loss"][0]:.3f}'
        lines.append(
            f'| {r["label"]} | {r["finetune"][0]:.1f} ± '
            f'{r["finetune"][1]:.1f} | {r["probe"][0]:.1f} ± '
            f'{r["probe"][1]:.1f} | {loss} | '
            + ', '.join(f'{v:.1f}' for v in r['finetune_runs']) + ' | '
            + ', '.join(f'{v:.1f}' for v in r['probe_runs']) + ' |')
    compute = sum(r['seconds'] + r['pretrain_seconds']
                  for runs in results.values() for r in runs)
    lines += [
        '',
        f'Made by `{cmd.strip()}`; the runs took {compute / 60:.1f} min '
        f'(this invocation {seconds / 60:.1f} min, finished runs are '
        f'reused) on {platform.machine()} with {torch.get_num_threads()} '
        f'threads, torch {torch.__version__}. The losses of different '
        f'methods are not comparable (MixMAE: MSE on normalised pixels; '
        f'SimMIM: L1 on masked pixels; single reconstruction: half of the '
        f'positions).',
    ]
    table = '\n'.join(lines) + '\n'
    with open(args.out + '.md', 'w') as f:
        f.write('# Toy reproduction of MixMAE\n\n' + table +
                f'\n![toy reproduction]({osp.basename(args.out)}.png)\n')
    with open(args.out + '.json', 'w') as f:
        json.dump(dict(rows=rows, seeds=args.seeds, spec=spec,
                       pretrain_iters=args.pretrain_iters,
                       finetune_iters=args.finetune_iters,
                       seconds=seconds), f, indent=1)
    plot(rows, args.out + '.png', n)
    if args.readme:
        update_readme(args.readme, table,
                      osp.basename(args.out).replace('_', '-'))
    print(table)


def plot(rows, path, num_seeds):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4.2))
    xs = range(len(rows))
    width = 0.38
    for offset, key, name in ((-width / 2, 'finetune', 'fine-tune'),
                              (width / 2, 'probe', 'linear probe')):
        ax.bar([x + offset for x in xs], [r[key][0] for r in rows], width,
               yerr=[r[key][1] for r in rows], capsize=3, label=name)
    ax.axhline(100. / len(TOY_CLASSES), color='gray', ls='--', lw=1,
               label='chance')
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r['key'].replace('_', '\n') for r in rows])
    ax.set_ylabel('top-1 (%)')
    ax.set_title(f'Toy reproduction: mean ± std over {num_seeds} seeds')
    ax.legend()
    ax.grid(axis='y', alpha=.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_readme(path, table, name):
    """Replace what stands between ``<!-- name:start -->`` and
    ``<!-- name:end -->`` in ``path`` by ``table``."""
    start, end = f'<!-- {name}:start -->', f'<!-- {name}:end -->'
    with open(path) as f:
        text = f.read()
    if start not in text or end not in text:
        raise SystemExit(f'{path} lacks the markers {start} / {end}')
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, 'w') as f:
        f.write(head + start + '\n' + table + end + tail)


def main():
    args = parse_args()
    start = time.time()
    spec = make_data(args.data_root, args.smoke)
    encoders = [e for e in ALL_ENCODERS if e[0] in args.encoders]
    results = {key: [] for key, _, _ in encoders}
    for seed in args.seeds:
        for key, _, cfg_name in encoders:
            ckpt, pre = None, dict(loss=None, seconds=0.)
            if cfg_name is not None:
                ckpt, pre = pretrain(key, cfg_name, seed, args)
            loss = pre['loss']
            out = finetune(key, ckpt, seed, args, len(TOY_CLASSES))
            results[key].append(
                dict(out, pretrain_loss=loss, seed=seed,
                     pretrain_seconds=pre['seconds']))
            print(f'[seed {seed}] {key}: fine-tune '
                  f'{out["finetune_top1"]:.1f}, probe '
                  f'{out["probe_top1"]:.1f} (pretraining loss {loss})',
                  flush=True)
    write_outputs(results, encoders, args, spec, time.time() - start)


if __name__ == '__main__':
    main()
