# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""How many graphs ``torch.compile`` makes for a plain (detection /
segmentation) encoder fed a stream of input sizes.

Compiles a small encoder of one family with Dynamo's default (automatic
dynamic shapes) and a backend that runs the traced graph as it is (no
code generation: what is counted is tracing and recompiling), feeds it
``--sizes`` random sizes, checks a few outputs against eager ones and
prints a line whenever a graph is added, then the total. Add
``TORCH_LOGS=recompiles`` to see which guard failed.

Examples::

    python tools/analysis_tools/compile_sizes.py --encoder swin
    python tools/analysis_tools/compile_sizes.py --encoder pvtv2 --width 8
"""
import argparse
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def encoder_cfg(encoder: str, width: int) -> dict:
    """A small encoder of ``encoder``'s family, stages ``width`` wide times
    the heads, all four stages out; Swin with the shipped windows."""
    heads = [1, 2, 4, 8]
    cfgs = dict(
        swin=dict(type='MixMAESwin',
                  arch=dict(embed_dims=width, depths=[1, 1, 1, 1],
                            num_heads=heads),
                  window_size=(14, 14, 14, 7)),
        pvtv2=dict(type='MixMAEPVTv2',
                   arch=dict(embed_dims=width, num_layers=[1, 1, 1, 1],
                             num_heads=heads, mlp_ratios=[2, 2, 2, 2])),
        twins=dict(type='MixMAETwins',
                   arch=dict(embed_dims=[width * h for h in heads],
                             num_heads=heads, mlp_ratios=[2, 2, 2, 2],
                             depths=[2, 2, 2, 2],
                             window_sizes=[7, 7, 7, 7])),
    )
    return dict(cfgs[encoder], out_indices=(0, 1, 2, 3))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--encoder', default='swin',
                   choices=['swin', 'pvtv2', 'twins'])
    p.add_argument('--width', type=int, default=16,
                   help='channels of the first stage per head')
    p.add_argument('--sizes', type=int, default=100)
    p.add_argument('--min', type=int, default=256, help='smallest side')
    p.add_argument('--max', type=int, default=1344, help='largest side')
    p.add_argument('--step', type=int, default=1,
                   help='sides are multiples of this (32: mmdet-padded)')
    p.add_argument('--batch', type=int, default=1)
    args = p.parse_args(argv)

    import mixmae_mm.models  # noqa: F401  (registers the encoders)
    from mmpretrain.registry import MODELS

    model = MODELS.build(encoder_cfg(args.encoder, args.width))
    model.init_weights()
    model.eval()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(model, backend=backend, fullgraph=True)
    rng = random.Random(0)
    start = time.perf_counter()
    for i in range(args.sizes):
        h, w = (rng.randrange(args.min, args.max + 1) // args.step *
                args.step for _ in range(2))
        x = torch.randn(args.batch, 3, h, w)
        before, t = len(graphs), time.perf_counter()
        with torch.no_grad():
            outs = compiled(x)
            if i < 3 or i % 25 == 0:
                for out, ref in zip(outs, model(x)):
                    torch.testing.assert_close(out, ref, atol=1e-4,
                                               rtol=1e-4)
        if len(graphs) != before:
            print(f'size {i:3d} {h}x{w}: graph {len(graphs)} '
                  f'({time.perf_counter() - t:.1f} s)', flush=True)
    print(f'{args.encoder} width {args.width}: {len(graphs)} graphs for '
          f'{args.sizes} sizes in [{args.min}, {args.max}] (step '
          f'{args.step}), {time.perf_counter() - start:.1f} s in all')


if __name__ == '__main__':
    main()
