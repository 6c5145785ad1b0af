"""Smoke test of tools/analysis_tools/benchmark.py on a tiny arch: it runs,
its loss check passes and it prints the ratio lines (no timing asserted)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = 'tools/analysis_tools/benchmark.py'


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, TOOL, *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_pretrain_benchmark_tiny_bf16():
    out = _run('--arch', 'tiny', '--size', '64', '--batch', '4', '--steps',
               '1', '--warmup', '1', '--dtype', 'bf16')
    assert 'LOSS CHECK passed: fp32 loss ours' in out
    assert 'ours bf16' in out
    ratio = [line for line in out.splitlines() if line.startswith('RATIO')]
    assert len(ratio) == 1, out
    assert 'ours/mmpretrain throughput' in ratio[0]
    assert 'mmpretrain fp32 throughput' in ratio[0]
    assert 'peak memory ours/mmpretrain' in ratio[0]
    for name in ('ours (bf16)', 'mmpretrain (bf16)', 'mmpretrain-fp32'):
        assert name in out
    # with gradients on the CPU our attention is the explicit expression
    assert ('SDPA kernels in one step of ours: none (explicit matmul + '
            'softmax)') in out


def test_dense_benchmark_tiny():
    out = _run('--arch', 'tiny', '--dense', '--dense-size', '64', '96',
               '--steps', '1', '--warmup', '0')
    assert 'mmdet Swin W2' in out and 'ours W4' in out
    # fp32 inference on the CPU takes SDPA: its fused CPU kernel, or on
    # torch 2.1 (no CPU flash kernel with a mask) its math path
    assert re.search(r'SDPA kernels in one forward of ours W4: '
                     r'(flash \(CPU\)|math \(unfused\)) x\d+', out), out
    assert 'measured fp32 matmul rate' in out
    lines = out.splitlines()
    assert any(line.startswith('RATIO dense fp32') for line in lines)


def test_plain_ablation_swaps_the_custom_function():
    """--plain runs our model against itself with the custom autograd
    function replaced: inside the swap it is never called, outside it is,
    and the tool's loss check and ratio line cover the pair."""
    import importlib.util

    from mixmae_mm.models.layers import norm_linear as nl
    spec = importlib.util.spec_from_file_location('bench', ROOT / TOOL)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(['--arch', 'tiny', '--size', '64', '--batch',
                             '4', '--plain', 'norm_linear'])
    models = bench.build_models(args, bench.impls(args))
    inputs = bench.make_inputs(args, models)
    calls = []
    apply = nl._NormLinear.apply
    nl._NormLinear.apply = lambda *a: calls.append(1) or apply(*a)
    try:
        with bench.plain_functions('norm_linear'):
            bench.loss_of(models['ours-plain'], inputs['ours']).backward()
        assert not calls
        bench.loss_of(models['ours'], inputs['ours']).backward()
        assert calls
    finally:
        del nl._NormLinear.apply  # back to the inherited Function.apply
    out = _run('--arch', 'tiny', '--size', '64', '--batch', '4', '--steps',
               '1', '--warmup', '0', '--plain', 'norm_linear', '--no-flops')
    assert 'LOSS CHECK passed: fp32 loss ours' in out and 'ours-plain' in out
    assert 'RATIO fp32: ours/ours-plain throughput' in out
    assert 'peak memory ours/ours-plain' in out
