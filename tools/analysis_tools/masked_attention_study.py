# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Why does masked self-attention not help the toy MixMAE? Measurements.

For each design (the toy design; a 4 x 4 mix grid at 128 px; a deeper
2-2-4-2 encoder) it pretrains MixMAE with masked self-attention on and off
(``tools/experiments/toy_reproduction.py``'s ``pretrain``: same configs,
seeds and cached runs as that tool, in the same work dir by default) and
measures on the 400 evaluation images of the toy-shapes set, never seen in
pretraining:

* hidden-block loss: MixMAE's own loss (MSE on normalised pixels of every
  position, each predicted from the mixed image in which the *other*
  image occupies it, i.e. from its hidden blocks), evaluated with masked
  attention on and off, for both trained models. Fixed mix masks (one per
  batch of 50, ratio 0.5), no augmentation.
* cross-image attention share: with masked attention off, the share of
  its attention probability that a query puts on tokens of the other image
  of the mixed input, averaged over queries, heads, images and the blocks
  of each stage, for an untrained encoder and both trained ones. The
  probabilities are recomputed from each block's weights and inputs
  (forward pre-hooks), the same expression as the attention itself. In
  brackets: the share under uniform attention within each window (the
  fraction of other-image keys), the level of an encoder that ignores which
  image a token belongs to.
* linear probe top-1 (%) on frozen pooled features of the clean images
  (the probe of the toy reproduction: 100 labelled images per class).

Example:
    python tools/analysis_tools/masked_attention_study.py --readme docs/en/reproduction.md
    python tools/analysis_tools/masked_attention_study.py --smoke
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import mixmae_mm  # noqa: E402,F401  (registers the modules)
from mixmae_mm.evaluation import linear_probe_accuracy  # noqa: E402
from mixmae_mm.models.layers.mixing import (mix_images,  # noqa: E402
                                            resample_mask, sample_mix_mask)
from mixmae_mm.models.layers.window_attention import \
    WindowAttention  # noqa: E402


def _load_toy_tool():
    """tools/experiments/toy_reproduction.py as a module (its pretraining
    runs, data and configs are shared, not copied)."""
    path = osp.join(ROOT, 'tools', 'experiments', 'toy_reproduction.py')
    spec = importlib.util.spec_from_file_location('toy_reproduction', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy = _load_toy_tool()

#: (name, label, image size, (key, config) with masked attention on,
#: (key, config) off). The keys of 'base' are the toy tool's rows, so the
#: two tools share those runs.
DESIGNS = [
    ('base', 'toy design: 96 px, 3 x 3 grid, depths 1-1-2-1', 96,
     ('mixmae', 'mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py'),
     ('no_masked_attn',
      'mixmae_swin-toy-w6_no-masked-attn_1xb32-1000i_toyshapes-96px.py')),
    ('grid4', '128 px, 4 x 4 grid, depths 1-1-2-1', 128,
     ('mixmae_grid4', 'mixmae_swin-toy-w8_1xb32-1000i_toyshapes-128px.py'),
     ('no_masked_attn_grid4',
      'mixmae_swin-toy-w8_no-masked-attn_1xb32-1000i_toyshapes-128px.py')),
    ('deep', '96 px, 3 x 3 grid, depths 2-2-4-2', 96,
     ('mixmae_deep', 'mixmae_swin-toy-w6-d2242_1xb32-1000i_toyshapes-96px.py'),
     ('no_masked_attn_deep',
      'mixmae_swin-toy-w6-d2242_no-masked-attn_1xb32-1000i_toyshapes-96px.py'
      )),
]
#: Images per batch of the loss evaluation (pairs i, B-1-i, one mask each).
EVAL_BATCH = 50


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--work-dir', help='defaults to work_dirs/toy_reproduction[_smoke] '
        '(the toy tool\'s: the base design\'s runs are shared)')
    parser.add_argument(
        '--data-root', help='defaults to data/toy_shapes[_smoke]')
    parser.add_argument('--designs', nargs='+',
                        choices=[d[0] for d in DESIGNS],
                        default=[d[0] for d in DESIGNS])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--pretrain-iters', type=int, default=1000)
    parser.add_argument(
        '--out', help='writes OUT.md and OUT.json; defaults to '
        'docs/toy_reproduction_masked_attention (smoke: '
        'WORK_DIR/masked_attention_study)')
    parser.add_argument(
        '--readme', help='also put the tables into this file between the '
        'lines <!-- NAME:start --> and <!-- NAME:end -->, NAME the base name '
        'of OUT with - for _ (toy-reproduction-masked-attention by default)')
    parser.add_argument('--smoke', action='store_true',
                        help='2 pretraining iterations on a tiny set')
    parser.add_argument('--force', action='store_true', help='redo runs')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args()
    suffix = '_smoke' if args.smoke else ''
    args.work_dir = args.work_dir or f'work_dirs/toy_reproduction{suffix}'
    args.data_root = args.data_root or f'data/toy_shapes{suffix}'
    if args.smoke:
        args.seeds = args.seeds[:1]
        args.pretrain_iters = min(args.pretrain_iters, 2)
    args.out = args.out or (osp.join(args.work_dir, 'masked_attention_study')
                            if args.smoke else
                            'docs/toy_reproduction_masked_attention')
    return args


def load_split(data_root: str, split: str, size: int):
    """Normalised RGB images (N, 3, size, size) and labels of a split, as
    the toy configs' preprocessors normalise them."""
    with open(osp.join(data_root, 'meta', f'{split}.txt')) as f:
        lines = [line.split() for line in f if line.strip()]
    imgs = []
    for name, _ in lines:
        img = Image.open(osp.join(data_root, split, name)).convert('RGB')
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        imgs.append(np.asarray(img))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    labels = torch.tensor([int(label) for _, label in lines])
    return (x - mean) / std, labels


def attention_probs(attn: WindowAttention, x: torch.Tensor, layout):
    """The attention probabilities of one block, recomputed as
    ``WindowAttention.forward`` computes them.

    Returns:
        list[tuple[Segment, Tensor]]: Per segment of ``layout`` its
        probabilities (B, K, nH, n, n).
    """
    qkv = attn.qkv(x)  # (B, L, 3C)
    out = []
    for seg in layout.segments:
        part = qkv[:, seg.start:seg.start + seg.num_cells * seg.size]
        part = part.reshape(part.shape[0], seg.num_cells, seg.size, 3,
                            attn.num_heads, -1)
        q, k, _ = part.permute(3, 0, 1, 4, 2, 5).unbind(0)  # (B,K,nH,n,Dh)
        logits = (q * attn.scale) @ k.transpose(-2, -1) + attn._bias(seg)
        out.append((seg, logits.softmax(-1)))
    return out


@torch.no_grad()
def cross_image_share(backbone, mixed: torch.Tensor, mix_mask: torch.Tensor,
                      masked: bool = False):
    """Share of attention that queries put on the other image's tokens.

    Args:
        backbone (MixMAESwin): The encoder.
        mixed (Tensor): Mixed images (B, 3, H, W).
        mix_mask (Tensor): Their mix mask (1, H/32, W/32).
        masked (bool): Run with masked self-attention (a check: the share
            is then 0). Defaults to False, the study's case.

    Returns:
        list[dict]: Per stage ``share`` and ``uniform`` (the share of
        uniform attention within each cell), means over queries, heads,
        images and the stage's blocks.
    """
    sums = [dict(share=0., uniform=0., count=0) for _ in backbone.layers]
    mask_stride = mixed.shape[-1] // mix_mask.shape[-1]

    def hook(stage, stride):
        def fn(module, inputs):
            x, layout = inputs
            groups = resample_mask(mix_mask, mask_stride,
                                   stride).float()  # (1, H, W)
            groups = layout.to_tokens(groups[..., None])[..., 0]  # (1, L)
            for seg, probs in attention_probs(module, x, layout):
                g = groups[:, seg.start:seg.start + seg.num_cells * seg.size]
                g = g.reshape(-1, seg.num_cells, seg.size)  # (1, K, n)
                other = (g[..., :, None] != g[..., None, :]).float()
                share = (probs * other[:, :, None]).sum(-1)  # (B,K,nH,n)
                uniform = other.mean(-1)[:, :, None].expand_as(share)
                sums[stage]['share'] += share.sum().item()
                sums[stage]['uniform'] += uniform.sum().item()
                sums[stage]['count'] += share.numel()
        return fn

    handles = [
        block.attn.register_forward_pre_hook(hook(i, stride))
        for i, (stage, stride) in enumerate(
            zip(backbone.layers, backbone.out_strides))
        for block in stage.blocks
    ]
    try:
        backbone(mixed, mix_mask if masked else None)
    finally:
        for handle in handles:
            handle.remove()
    return [dict(share=s['share'] / s['count'],
                 uniform=s['uniform'] / s['count']) for s in sums]


def eval_masks(num_batches: int, batch: int, grid: int, seed: int):
    """One fixed mix mask per evaluation batch, ratio 0.5."""
    gen = torch.Generator().manual_seed(seed)
    return [sample_mix_mask(batch, (grid, grid), 0.5, generator=gen)
            for _ in range(num_batches)]


@torch.no_grad()
def hidden_block_loss(model, imgs: torch.Tensor, masks, masked: bool):
    """MixMAE's loss on ``imgs`` (one batch per mask, pairs i and B-1-i)
    with masked attention on or off, averaged over images."""
    batch = len(imgs) // len(masks)
    saved = model.masked_attention
    model.masked_attention = masked
    try:
        total, count = 0., 0
        for i, mask in enumerate(masks):
            x = imgs[i * batch:(i + 1) * batch]
            pred, coarse = model._encode_decode(mix_images(x, mask), mask)
            total += model.head.loss(pred, x, coarse).item() * len(x)
            count += len(x)
    finally:
        model.masked_attention = saved
    return total / count


@torch.no_grad()
def probe(backbone, train, val, num_classes):
    """Linear-probe top-1 on pooled last-stage features."""

    def feats(x):
        return torch.cat([
            backbone(x[i:i + 100])[-1].mean((2, 3))
            for i in range(0, len(x), 100)
        ])

    return linear_probe_accuracy(
        feats(train[0]), train[1], feats(val[0]), val[1], num_classes)


def build(cfg_name: str, ckpt=None, seed=0):
    """The MixMAE model of a pretraining config, in eval mode, with the
    weights of ``ckpt`` or freshly initialised (seeded)."""
    cfg = Config.fromfile(osp.join(toy.CFG_DIR, cfg_name))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if ckpt is not None:
        load_checkpoint(model, ckpt, map_location='cpu', strict=True,
                        logger='silent')
    return model.eval()


def study_design(design, seed, args, num_classes):
    name, label, size, on, off = design
    val = load_split(args.data_root, 'val', size)
    train = load_split(args.data_root, 'train', size)
    # whole batches only (the smoke set has fewer images than a batch)
    batch = min(EVAL_BATCH, len(val[0]))
    num_batches = len(val[0]) // batch
    masks = eval_masks(num_batches, batch, size // 32, seed)
    mixed = mix_images(val[0][:batch], masks[0])
    out = dict(design=name, label=label, seed=seed, trained={},
               num_eval=batch * num_batches)
    for masked, (key, cfg_name) in ((True, on), (False, off)):
        ckpt, pre = toy.pretrain(key, cfg_name, seed, args)
        model = build(cfg_name, ckpt)
        out['trained'][key] = dict(
            masked_attention_in_pretraining=masked,
            pretrain_loss=pre['loss'],
            loss_masked_on=hidden_block_loss(model, val[0], masks, True),
            loss_masked_off=hidden_block_loss(model, val[0], masks, False),
            probe_top1=probe(model.backbone, train, val, num_classes),
            share=cross_image_share(model.backbone, mixed, masks[0]))
    untrained = build(on[1], None, seed)
    out['untrained_share'] = cross_image_share(untrained.backbone, mixed,
                                               masks[0])
    return out


def on_off(trained):
    return 'on' if trained['masked_attention_in_pretraining'] else 'off'


def fmt(values, digits=3):
    return ', '.join(f'{v:.{digits}f}' for v in values)


def tables(results, args, seconds):
    """Markdown: the loss/probe table and the attention-share table."""
    by_design = {}
    for r in results:
        by_design.setdefault(r['design'], []).append(r)
    seeds = ', '.join(map(str, args.seeds))
    lines = [
        f'One pretraining run per row and seed (seed'
        f'{"s" * (len(args.seeds) > 1)} {seeds}, one value per seed), '
        f'{args.pretrain_iters} iterations x 32 '
        f'images; measured on the {results[0]["num_eval"]} evaluation '
        f'images. Hidden-block loss: MixMAE\'s loss (MSE on '
        f'normalised pixels of blocks hidden behind the other image), '
        f'evaluated with masked attention on / off; probe: linear probe '
        f'top-1 (%).',
        '',
        '| design | masked attention in pretraining | final pretraining loss'
        ' | hidden-block loss, eval. masked on | hidden-block loss, eval. '
        'masked off | linear probe top-1 |',
        '|---|---|---|---|---|---|',
    ]
    for runs in by_design.values():
        for key in runs[0]['trained']:
            rows = [r['trained'][key] for r in runs]
            lines.append(
                f'| {runs[0]["label"]} | {on_off(rows[0])} | '
                f'{fmt([t["pretrain_loss"] for t in rows])} | '
                f'{fmt([t["loss_masked_on"] for t in rows])} | '
                f'{fmt([t["loss_masked_off"] for t in rows])} | '
                f'{fmt([t["probe_top1"] for t in rows], 1)} |')
    num_stages = max(len(r['untrained_share']) for r in results)
    lines += [
        '',
        'Cross-image attention share with masked attention off (the share of'
        ' each query\'s attention on the other image\'s tokens; in brackets '
        'the share of uniform attention within the window; one pair per '
        f'seed), per stage, on the first '
        f'{min(EVAL_BATCH, results[0]["num_eval"])} evaluation images mixed '
        f'with one mask (per seed):',
        '',
        '| design | encoder | ' + ' | '.join(
            f'stage {i + 1}' for i in range(num_stages)) + ' |',
        '|---|---|' + '---|' * num_stages,
    ]
    for runs in by_design.values():
        encs = [('untrained', [r['untrained_share'] for r in runs])]
        for key in runs[0]['trained']:
            t = runs[0]['trained'][key]
            encs.append((f'trained, masked attention {on_off(t)}',
                         [r['trained'][key]['share'] for r in runs]))
        for enc, shares in encs:
            # the uniform level depends on the seed's mask: one per seed
            cells = [
                ', '.join(f'{s[i]["share"]:.2f} ({s[i]["uniform"]:.2f})'
                          for s in shares) for i in range(len(shares[0]))
            ]
            lines.append(f'| {runs[0]["label"]} | {enc} | ' +
                         ' | '.join(cells) + ' |')
    cmd = 'python tools/analysis_tools/masked_attention_study.py ' + \
        ' '.join(sys.argv[1:])
    lines += ['', f'Made by `{cmd.strip()}` (this invocation '
              f'{seconds / 60:.1f} min; finished pretraining runs are reused)'
              f', torch {torch.__version__}, {torch.get_num_threads()} '
              f'threads.']
    return '\n'.join(lines) + '\n'


def main():
    args = parse_args()
    start = time.time()
    spec = toy.make_data(args.data_root, args.smoke)
    num_classes = len(spec['classes'])
    results = []
    for design in DESIGNS:
        if design[0] not in args.designs:
            continue
        for seed in args.seeds:
            print(f'[{design[0]}, seed {seed}]', flush=True)
            results.append(study_design(design, seed, args, num_classes))
    table = tables(results, args, time.time() - start)
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out + '.md', 'w') as f:
        f.write('# Masked self-attention in the toy MixMAE\n\n' + table)
    with open(args.out + '.json', 'w') as f:
        json.dump(dict(results=results, seeds=args.seeds,
                       pretrain_iters=args.pretrain_iters), f, indent=1)
    if args.readme:
        toy.update_readme(args.readme, table,
                          osp.basename(args.out).replace('_', '-'))
    print(table)


if __name__ == '__main__':
    main()
