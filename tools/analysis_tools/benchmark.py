# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Side-by-side speed and memory of a MixMAE pretraining step.

Pretraining mode (default), in ONE process: builds ``mixmae_mm``'s
``MixMAE`` and mmpretrain 1.2.0's ``MixMIM`` with the same arch, batch and
image size, copies mmpretrain's weights into ours
(:func:`~mixmae_mm.models.utils.ckpt_convert.convert_mmpretrain_mixmim`),
gives both the same mix mask, CHECKS that the losses agree (fp32: 1e-5
relative; bf16: our autocast loss within 1e-2 relative of our fp32 loss),
then times full training steps (forward, backward, AdamW step, zero_grad)
alternating between the implementations after warm-up. With ``--compile``
the same run also times both implementations' loss under ``torch.compile``
(backend ``--compile-backend``, inductor by default; the compiled losses
are checked against the eager ones first, which is also their warm-up
compile) and ours eager on its static-shape path (dense windows, what the
compiler traces) next to its default eager CPU path (the cells). Peak memory is
measured per implementation in a fresh subprocess (``--mem-only IMPL``):
peak RSS (``VmHWM``) on the CPU, ``torch.cuda.max_memory_allocated`` on a
GPU.

Dense mode (``--dense``): the plain backbone forward (no mask, all four
stages out) at 800x1333 against mmdet 3.3.0's ``SwinTransformer`` of the
same width (window 7, shifted windows: mmdet's Swin-B); ours runs with its
own windows (14, 14, 14, 7) and, for a like-for-like check, with window 7.

FLOPs are those the run actually executes, counted by
``torch.utils.flop_counter.FlopCounterMode`` (fvcore-style: 2 FLOPs per
multiply-add of every mm/addmm/bmm/convolution/SDPA, elementwise work not
counted), once per implementation outside the timed steps. Achieved GFLOP/s
are compared with the matrix-product rate measured in the same run (a
square fp32 or bf16 ``torch.mm``).

Examples::

    python tools/analysis_tools/benchmark.py                  # Swin-B, fp32
    python tools/analysis_tools/benchmark.py --dtype bf16
    python tools/analysis_tools/benchmark.py --dense
    python tools/analysis_tools/benchmark.py --compile --dtype bf16 \
        --steps 8                             # + compiled, both impls
    python tools/analysis_tools/benchmark.py --compile --dtype both \
        --steps 8                             # fp32, then bf16
    python tools/analysis_tools/benchmark.py --arch tiny --size 64 \
        --steps 2 --warmup 1                                  # smoke test
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: name -> (encoder arch, windows, decoder (embed, depth, heads))
ARCHS = {
    'tiny': (dict(embed_dims=32, depths=[1, 1, 1, 1],
                  num_heads=[1, 2, 4, 8]), (4, 4, 4, 2), (64, 2, 4)),
    'base':
    (dict(embed_dims=128, depths=[2, 2, 18, 2],
          num_heads=[4, 8, 16, 32]), (14, 14, 14, 7), (512, 8, 16)),
    'large':
    (dict(embed_dims=192, depths=[2, 2, 18, 2],
          num_heads=[6, 12, 24, 48]), (14, 14, 14, 7), (512, 8, 16)),
}
IMPLS = ('ours', 'mmpretrain')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='base', choices=sorted(ARCHS))
    p.add_argument('--size', type=int, default=224, help='image side (px)')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument(
        '--dtype',
        default='fp32',
        choices=['fp32', 'bf16', 'both'],
        help="'both': the whole run in fp32, then in bf16 (one process)")
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument(
        '--steps', type=int, default=6, help='timed steps per implementation')
    p.add_argument(
        '--warmup',
        type=int,
        default=1,
        help='untimed steps per implementation')
    p.add_argument(
        '--threads',
        type=int,
        default=0,
        help='torch threads (0: keep torch default)')
    p.add_argument(
        '--with-cp',
        type=int,
        nargs='*',
        help='activation checkpointing in our encoder: every stage, or the '
        'stages listed (e.g. --with-cp 0 1)')
    p.add_argument(
        '--compile',
        action='store_true',
        help='also time both implementations compiled (and ours eager on '
        'its static-shape path)')
    p.add_argument(
        '--compile-backend',
        default='inductor',
        help='torch.compile backend for --compile (e.g. eager, aot_eager)')
    p.add_argument(
        '--compile-mode',
        default=None,
        help="torch.compile mode for --compile, e.g. 'reduce-overhead' "
        '(CUDA graphs on a GPU) or max-autotune')
    p.add_argument(
        '--no-mem',
        action='store_true',
        help='skip the peak-memory subprocesses')
    p.add_argument(
        '--no-fp32-ref',
        action='store_true',
        help='with --dtype bf16, skip timing mmpretrain in fp32')
    p.add_argument(
        '--no-flops', action='store_true', help='skip the FLOP count')
    p.add_argument(
        '--dense',
        action='store_true',
        help='time the dense backbone forward against mmdet Swin')
    p.add_argument('--dense-size', type=int, nargs=2, default=(800, 1333))
    p.add_argument('--dense-batch', type=int, default=1)
    p.add_argument(
        '--mem-only',
        choices=IMPLS,
        help='(internal) run one implementation, print its peak '
        'memory as JSON')
    p.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='N',
        help='profile one step per implementation and print the '
        'N ops with the largest self time')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


# ----------------------------------------------------------------- helpers
def autocast(args):
    if args.dtype == 'bf16':
        return torch.autocast(args.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def matmul_rate(dtype, device, n=None, reps=10):
    """Measured GFLOP/s of a square ``torch.mm`` (best of ``reps``; callers
    measure before and after the timed steps and keep the best, as the
    machine is shared)."""
    n = n or (8192 if device == 'cuda' else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float('inf')
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def count_flops(fn):
    """FLOPs executed by ``fn()`` (matrix products, convolutions, SDPA)."""
    from mixmae_mm.utils.torch_compat import flop_counter_mode
    with flop_counter_mode() as counter:
        fn()
    return counter.get_total_flops()


def quiet_mmengine():
    """Keep mmengine's per-parameter init log out of the report."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine', log_level='WARNING')


def profile(name, step, top):
    """Print the ``top`` ops by self time of one ``step()``, and the
    shares of op families that matter here."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f'\n--- profile of one step: {name}, total self time '
          f'{total / 1e6:.2f} s')
    families = {
        'matmul (mm/addmm/bmm/linear)':
        ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm'),
        'softmax fwd+bwd': ('aten::_softmax', 'aten::_softmax_backward_data'),
        'add/sub/mul/where (mask, bias, residual)':
        ('aten::add', 'aten::add_', 'aten::sub', 'aten::mul', 'aten::mul_',
         'aten::where', 'aten::masked_fill', 'aten::rsub'),
        'index/index_put/gather':
        ('aten::index', 'aten::index_put_', 'aten::_index_put_impl_',
         'aten::index_select', 'aten::index_add_',
         'aten::embedding_dense_backward', 'aten::gather',
         'aten::scatter_add_'),
        'copies (copy_/clone/cat/contiguous)': ('aten::copy_', 'aten::clone',
                                                'aten::cat'),
        'optimizer (AdamW)':
        ('aten::_fused_adamw_', 'aten::_foreach_add_', 'aten::addcdiv_',
         'aten::lerp_', 'aten::sqrt', 'aten::div', 'aten::addcmul_',
         'aten::_foreach_mul_'),
    }
    for fam, ops in families.items():
        t = sum(e.self_cpu_time_total for e in events if e.key in ops)
        print(f'  {fam:<44}{t / 1e6:7.3f} s {t / total:6.1%}')
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    for e in rows:
        print(f'  {e.key:<44}{e.self_cpu_time_total / 1e6:7.3f} s '
              f'{e.self_cpu_time_total / total:6.1%}  x{e.count}')


#: aten ops of ``F.scaled_dot_product_attention``'s backends (forward)
SDPA_OPS = {
    'aten::_scaled_dot_product_flash_attention': 'flash',
    'aten::_scaled_dot_product_flash_attention_for_cpu': 'flash (CPU)',
    'aten::_scaled_dot_product_efficient_attention': 'memory-efficient',
    'aten::_scaled_dot_product_cudnn_attention': 'cuDNN',
    'aten::_scaled_dot_product_attention_math': 'math (unfused)',
}


def sdpa_kernels(fn):
    """Which SDPA backends ``fn()`` ran, as 'name xCOUNT' (the profiler
    records the dispatched aten op of each call; explicit matmul/softmax
    attention does not appear)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts = {
        SDPA_OPS[e.key]: e.count
        for e in prof.key_averages() if e.key in SDPA_OPS
    }
    return ', '.join(f'{k} x{v}' for k, v in sorted(counts.items())) or \
        'none (explicit matmul + softmax)'


def median(xs):
    return statistics.median(xs) if xs else float('nan')


# ------------------------------------------------------------ pretraining
def with_cp_arg(args):
    """``--with-cp`` as MixMAESwin's ``with_cp``: absent False, bare True,
    with stage indices those stages."""
    if args.with_cp is None:
        return False
    return list(args.with_cp) if args.with_cp else True


def ours_cfg(args):
    arch, windows, (dec_dims, dec_depth, dec_heads) = ARCHS[args.arch]
    return dict(
        type='MixMAE',
        backbone=dict(
            type='MixMAESwin',
            arch=dict(arch),
            window_size=windows,
            with_cp=with_cp_arg(args)),
        # mmpretrain's decoder norms use eps 1e-6 (official 1e-5)
        neck=dict(
            type='MixMAEPretrainDecoder',
            embed_dims=dec_dims,
            depth=dec_depth,
            num_heads=dec_heads,
            norm_eps=1e-6),
        head=dict(type='MixMAEPretrainHead', norm_pix=True))


def build_models(args, impls=IMPLS):
    """Build the requested implementations with identical weights.

    Returns:
        dict: impl name -> model (train mode, on ``args.device``).
    """
    import mmpretrain.models  # noqa: F401  (registers MixMIM)
    from mmpretrain.registry import MODELS

    import mixmae_mm.models  # noqa: F401
    from mixmae_mm.models.layers.pos_embed import sincos_pos_embed_2d
    from mixmae_mm.models.utils.ckpt_convert import convert_mmpretrain_mixmim

    arch, windows, (dec_dims, dec_depth, dec_heads) = ARCHS[args.arch]
    grid = args.size // 32
    torch.manual_seed(args.seed)
    if 'mmpretrain' not in impls:
        ours = MODELS.build(ours_cfg(args))
        ours.init_weights()
        return dict(ours=ours.to(args.device).train())
    theirs = MODELS.build(
        dict(
            type='MixMIM',
            backbone=dict(
                type='MixMIMPretrainTransformer',
                arch=dict(arch),
                img_size=args.size,
                window_size=list(windows),
                mask_ratio=0.5),
            neck=dict(
                type='MixMIMPretrainDecoder',
                num_patches=grid * grid,
                encoder_stride=32,
                embed_dim=arch['embed_dims'] * 8,
                decoder_embed_dim=dec_dims,
                decoder_depth=dec_depth,
                decoder_num_heads=dec_heads),
            head=dict(
                type='MixMIMPretrainHead',
                norm_pix=True,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    theirs.init_weights()
    models = {}
    if 'ours' in impls:
        ours = MODELS.build(ours_cfg(args))
        state_dict, _ = convert_mmpretrain_mixmim(theirs.state_dict())
        ours.load_state_dict(state_dict, strict=True)
        models['ours'] = ours.to(args.device).train()
    if 'mmpretrain' in impls:
        # our sin-cos tables are derived: give mmpretrain the same ones
        with torch.no_grad():
            theirs.backbone.absolute_pos_embed.copy_(
                sincos_pos_embed_2d(arch['embed_dims'], (grid * 8, grid * 8)))
            theirs.neck.decoder_pos_embed.copy_(
                sincos_pos_embed_2d(dec_dims, (grid, grid)))
        models['mmpretrain'] = theirs.to(args.device).train()
    return models


def make_inputs(args, models):
    """Images, the shared mix mask, and per-impl step functions' inputs;
    patches mmpretrain's ``random_masking`` to return the same mask."""
    from mixmae_mm.models.layers.mixing import (mix_images, sample_mix_mask,
                                                upsample_mask)
    gen = torch.Generator().manual_seed(args.seed)
    grid = args.size // 32
    imgs = torch.randn(
        args.batch, 3, args.size, args.size, generator=gen).to(args.device)
    # the mask stays on the host, as MixMAEDataPreprocessor gives it (the
    # encoder plans its layouts there); mixing uses a device copy
    mask = sample_mix_mask(args.batch, (grid, grid), 0.5, generator=gen)
    if 'mmpretrain' in models:
        masks = [
            upsample_mask(mask, s).float().reshape(1, -1, 1).to(args.device)
            for s in (8, 4, 2, 1)
        ]  # (1, L_i, 1) per stage, 1 = partner token
        models['mmpretrain'].backbone.random_masking = \
            lambda x, ratio: masks
    return dict(
        ours=[imgs, mix_images(imgs, mask.to(args.device)), mask],
        mmpretrain=imgs)


def loss_of(model, inputs):
    return model.loss(inputs, None)['loss']


def static_loss_of(model, inputs):
    """Our loss on the static-shape path in eager mode (what a compiled
    or GPU step runs), whatever the device."""
    from mixmae_mm.models.layers.dense_windows import force_attention_path
    with force_attention_path('static'):
        return loss_of(model, inputs)


def compiled_loss_of(args, model):
    """``model``'s loss under ``torch.compile`` (ours takes its static
    path there by itself)."""
    # fixed shapes in a benchmark (torch 2.1's automatic dynamic shapes
    # fail on our graph-broken helpers there)
    fn = torch.compile(
        lambda inputs: loss_of(model, inputs),
        backend=args.compile_backend,
        mode=args.compile_mode,
        dynamic=False)
    return lambda model, inputs: fn(inputs)


def make_step(args, model, inputs, loss_fn=loss_of):
    """One full training step: forward, backward, AdamW, zero_grad."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)

    def step():
        with autocast(args):
            loss = loss_fn(model, inputs)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def check_losses(args, models, inputs):
    """Assert the documented loss agreement; return a printable line."""
    with torch.no_grad():
        losses = {k: loss_of(m, inputs[k]).item() for k, m in models.items()}
        rel = abs(losses['ours'] - losses['mmpretrain']) / abs(
            losses['mmpretrain'])
        ok = rel <= 1e-5
        line = (f'fp32 loss ours {losses["ours"]:.7f} mmpretrain '
                f'{losses["mmpretrain"]:.7f} rel diff {rel:.2e} (<= 1e-5)')
        if args.dtype == 'bf16':
            with autocast(args):
                low = loss_of(models['ours'], inputs['ours']).item()
            rel16 = abs(low - losses['ours']) / abs(losses['ours'])
            ok = ok and rel16 <= 1e-2
            line += (f'; ours bf16 {low:.7f} vs fp32 rel diff {rel16:.2e} '
                     f'(<= 1e-2)')
    if not ok:
        raise SystemExit(f'LOSS CHECK FAILED: {line}')
    return f'LOSS CHECK passed: {line}'


def check_compiled(args, models, inputs, runs):
    """Compile (the first call traces and generates code) and assert that
    each compiled loss agrees with the eager one (1e-4 relative: generated
    kernels sum in another order); return a printable line."""
    parts, ok = [], True
    for impl in IMPLS:
        fn = runs[f'{impl}-compiled'][2]
        t = time.perf_counter()
        with autocast(args):
            got = fn(models[impl], inputs[impl])
            ref = loss_of(models[impl], inputs[impl])
        got.backward()  # the backward graph compiles on its first call
        models[impl].zero_grad(set_to_none=True)
        rel = abs(got.item() - ref.item()) / abs(ref.item())
        ok = ok and rel <= (1e-4 if args.dtype == 'fp32' else 1e-2)
        parts.append(f'{impl} rel diff {rel:.2e} (first call '
                     f'{time.perf_counter() - t:.0f} s)')
    line = f'compiled ({args.compile_backend}) vs eager {args.dtype} ' \
        f'loss: ' + '; '.join(parts)
    if not ok:
        raise SystemExit(f'COMPILED LOSS CHECK FAILED: {line}')
    return f'COMPILED LOSS CHECK passed: {line}'


def peak_memory(args, impl):
    """Run ``--mem-only impl`` in a fresh process; return its JSON."""
    cmd = [
        sys.executable, __file__, '--mem-only', impl, '--arch', args.arch,
        '--size',
        str(args.size), '--batch',
        str(args.batch), '--dtype', args.dtype, '--device', args.device,
        '--warmup', '1', '--steps', '1', '--threads',
        str(args.threads), '--seed',
        str(args.seed)
    ] + ([] if args.with_cp is None else
         ['--with-cp', *map(str, args.with_cp)])
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def rss_mib():
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def _status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def mem_only(args):
    models = build_models(args, impls=(args.mem_only, ))
    inputs = make_inputs(args, models)
    model = models[args.mem_only]
    step = make_step(args, model, inputs[args.mem_only])
    before = rss_mib()
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    for _ in range(args.warmup + args.steps):
        step()
    res = dict(impl=args.mem_only, rss_before_mib=before)
    # VmHWM, the high-water mark of this process image: ru_maxrss would
    # include the (large) parent's RSS at fork time, kept across exec
    res['peak_rss_mib'] = _status_kib('VmHWM') / 1024
    if args.device == 'cuda':
        res['peak_cuda_mib'] = torch.cuda.max_memory_allocated() / 2**20
        res['cuda_before_mib'] = base
    print(json.dumps(res))


def run_pretrain(args):
    models = build_models(args)
    inputs = make_inputs(args, models)
    print(check_losses(args, models, inputs), flush=True)
    # name -> (args, impl, loss function)
    runs = {k: (args, k, loss_of) for k in IMPLS}
    if args.compile:
        runs['ours-static'] = (args, 'ours', static_loss_of)
        for impl in IMPLS:
            runs[f'{impl}-compiled'] = (args, impl,
                                        compiled_loss_of(args, models[impl]))
        print(check_compiled(args, models, inputs, runs), flush=True)
    if args.dtype == 'bf16' and not args.no_fp32_ref:
        runs['mmpretrain-fp32'] = (argparse.Namespace(
            **dict(vars(args), dtype='fp32')), 'mmpretrain', loss_of)
    steps = {
        name: make_step(a, models[impl], inputs[impl], fn)
        for name, (a, impl, fn) in runs.items()
    }
    flops = {}
    if not args.no_flops:
        # forward + backward, no optimizer, counted eagerly: a compiled
        # run does the matrix products of the eager run of the same path
        flop_runs = {k: (k, loss_of) for k in IMPLS}
        if args.compile:
            flop_runs['ours-static'] = ('ours', static_loss_of)
        for name, (impl, fn) in flop_runs.items():

            def fwd_bwd(impl=impl, fn=fn):
                with autocast(args):
                    loss = fn(models[impl], inputs[impl])
                loss.backward()
                models[impl].zero_grad(set_to_none=True)

            flops[name] = count_flops(fwd_bwd)
        if args.compile:
            flops['ours-compiled'] = flops['ours-static']
            flops['mmpretrain-compiled'] = flops['mmpretrain']
    for name in runs:
        if not name.endswith('-compiled'):
            print(f'SDPA kernels in one step of {name}: '
                  f'{sdpa_kernels(steps[name])}')
    if args.profile:
        for name in runs:
            steps[name]()  # warm
            profile(name, steps[name], args.profile)
    mm_dtype = torch.bfloat16 if args.dtype == 'bf16' else torch.float32
    rate = matmul_rate(mm_dtype, args.device)
    times = {name: [] for name in runs}
    order = list(runs)
    for i in range(args.warmup + args.steps):
        for name in (order if i % 2 == 0 else order[::-1]):
            sync(args.device)
            t = time.perf_counter()
            steps[name]()
            sync(args.device)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    rate = max(rate, matmul_rate(mm_dtype, args.device))
    mem = {} if args.no_mem else {k: peak_memory(args, k) for k in IMPLS}
    report_pretrain(args, times, flops, rate, mem)


def report_pretrain(args, times, flops, rate, mem):
    dev = torch.cuda.get_device_name() if args.device == 'cuda' else \
        f'cpu x{torch.get_num_threads()} threads'
    print(f'\nMixMAE pretraining step: arch {args.arch}, {args.size}px, '
          f'batch {args.batch}, {args.dtype}, {dev}, torch '
          f'{torch.__version__}; {args.steps} timed steps after '
          f'{args.warmup} warm-up, alternating')
    print(f'measured {args.dtype} matmul rate: {rate:.0f} GFLOP/s')
    key = 'peak_cuda_mib' if args.device == 'cuda' else 'peak_rss_mib'
    print(f'{"impl":<22}{"median s":>10}{"min s":>8}{"img/s":>8}'
          f'{"GFLOP/step":>12}{"GFLOP/s":>9}{"of mm":>7}{"peak MiB":>10}')
    for name, ts in times.items():
        med = median(ts)
        f = flops.get(name)
        gf = f'{f / 1e9:.1f}' if f else '-'
        gfs = f'{f / 1e9 / med:.0f}' if f else '-'
        share = f'{f / 1e9 / med / rate:.0%}' if f else '-'
        peak = f'{mem[name][key]:.0f}' if name in mem else '-'
        label = name + (f' ({args.dtype})' if name in IMPLS else '')
        print(f'{label:<22}{med:>10.3f}{min(ts):>8.3f}'
              f'{args.batch / med:>8.2f}{gf:>12}{gfs:>9}{share:>7}'
              f'{peak:>10}')
    speed = median(times['mmpretrain']) / median(times['ours'])
    line = (f'RATIO {args.dtype}: ours/mmpretrain throughput {speed:.2f}x')
    if 'mmpretrain-fp32' in times:
        ref = median(times['mmpretrain-fp32'])
        line += (f', ours {args.dtype} / mmpretrain fp32 throughput '
                 f'{ref / median(times["ours"]):.2f}x')
    if mem:
        line += (f', peak memory ours/mmpretrain '
                 f'{mem["ours"][key] / mem["mmpretrain"][key]:.2f}')
        if args.device == 'cpu':
            act = [mem[k][key] - mem[k]['rss_before_mib'] for k in IMPLS]
            line += f' (growth over the pre-step RSS {act[0] / act[1]:.2f})'
    print(line)
    if 'ours-compiled' in times:
        t = {k: median(v) for k, v in times.items()}
        print(f'RATIO {args.dtype} compiled: ours/mmpretrain throughput '
              f'{t["mmpretrain-compiled"] / t["ours-compiled"]:.2f}x; '
              f'compiled/eager ours {t["ours"] / t["ours-compiled"]:.2f}x, '
              f'mmpretrain {t["mmpretrain"] / t["mmpretrain-compiled"]:.2f}x;'
              f' ours eager cells/static {t["ours-static"] / t["ours"]:.2f}x')


# ------------------------------------------------------------------ dense
def run_dense(args):
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS as DET_MODELS
    from mmpretrain.registry import MODELS

    import mixmae_mm.models  # noqa: F401

    arch, windows, _ = ARCHS[args.arch]
    torch.manual_seed(args.seed)
    small = windows[-1]
    models = {
        f'ours W{windows[0]}':
        MODELS.build(
            dict(
                type='MixMAESwin',
                arch=dict(arch),
                window_size=windows,
                out_indices=(0, 1, 2, 3))),
        f'ours W{small}':
        MODELS.build(
            dict(
                type='MixMAESwin',
                arch=dict(arch),
                window_size=(small, ) * 4,
                out_indices=(0, 1, 2, 3))),
        f'mmdet Swin W{small}':
        DET_MODELS.build(
            dict(
                type='SwinTransformer',
                embed_dims=arch['embed_dims'],
                depths=arch['depths'],
                num_heads=arch['num_heads'],
                window_size=small,
                drop_path_rate=0.,
                out_indices=(0, 1, 2, 3))),
    }
    for m in models.values():
        m.init_weights()
        m.to(args.device).eval()
    x = torch.randn(args.dense_batch, 3, *args.dense_size, device=args.device)
    mm_dtype = torch.bfloat16 if args.dtype == 'bf16' else torch.float32
    rate = matmul_rate(mm_dtype, args.device)

    def fwd(m):
        with torch.inference_mode(), autocast(args):
            return m(x)

    flops = {} if args.no_flops else {
        k: count_flops(lambda m=m: fwd(m))
        for k, m in models.items()
    }
    for k, m in models.items():
        print(f'SDPA kernels in one forward of {k}: '
              f'{sdpa_kernels(lambda m=m: fwd(m))}')
    times = {k: [] for k in models}
    order = list(models)
    for i in range(args.warmup + args.steps):
        for k in (order if i % 2 == 0 else order[::-1]):
            sync(args.device)
            t = time.perf_counter()
            fwd(models[k])
            sync(args.device)
            if i >= args.warmup:
                times[k].append(time.perf_counter() - t)
    rate = max(rate, matmul_rate(mm_dtype, args.device))
    print(f'\nDense backbone forward (inference), arch {args.arch}, input '
          f'{args.dense_batch}x3x{args.dense_size[0]}x{args.dense_size[1]}, '
          f'{args.dtype}, {args.steps} timed after {args.warmup} warm-up')
    print(f'measured {args.dtype} matmul rate: {rate:.0f} GFLOP/s')
    print(f'{"impl":<20}{"median s":>10}{"min s":>8}{"GFLOP":>9}'
          f'{"GFLOP/s":>9}{"of mm":>7}')
    for k, ts in times.items():
        med = median(ts)
        f = flops.get(k)
        gf = f'{f / 1e9:.0f}' if f else '-'
        gfs = f'{f / 1e9 / med:.0f}' if f else '-'
        share = f'{f / 1e9 / med / rate:.0%}' if f else '-'
        print(f'{k:<20}{med:>10.3f}{min(ts):>8.3f}{gf:>9}{gfs:>9}'
              f'{share:>7}')
    ref = median(times[order[-1]])
    print(f'RATIO dense {args.dtype}: mmdet/ours time '
          f'{order[0]} {ref / median(times[order[0]]):.2f}x, '
          f'{order[1]} {ref / median(times[order[1]]):.2f}x')


def main(argv=None):
    args = parse_args(argv)
    quiet_mmengine()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mem_only:
        mem_only(args)
        return
    both = args.dtype == 'both'
    for dtype in ('fp32', 'bf16') if both else (args.dtype, ):
        # with both, the fp32 run times mmpretrain in fp32 already
        a = argparse.Namespace(**dict(
            vars(args), dtype=dtype, no_fp32_ref=args.no_fp32_ref or both))
        if args.dense:
            run_dense(a)
        else:
            run_pretrain(a)


if __name__ == '__main__':
    main()
