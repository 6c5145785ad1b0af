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


def test_pretrain_benchmark_compiled_tiny():
    """--compile adds both implementations compiled (here aot_eager: no
    code generation) and ours eager on the static path, each checked
    against the eager loss before timing; --dtype both runs it all in fp32,
    then in bf16."""
    out = _run('--arch', 'tiny', '--size', '64', '--batch', '4', '--steps',
               '1', '--warmup', '1', '--compile', '--compile-backend',
               'aot_eager', '--no-mem', '--dtype', 'both')
    for dtype in ('fp32', 'bf16'):
        assert f'COMPILED LOSS CHECK passed: compiled (aot_eager) vs ' \
            f'eager {dtype} loss: ours rel diff' in out
    for name in ('ours-static', 'ours-compiled', 'mmpretrain-compiled'):
        assert len(re.findall(rf'^{name} +\d+\.\d+ +\d+\.\d+ ', out,
                              re.M)) == 2, out
    for dtype in ('fp32', 'bf16'):
        ratio = [line for line in out.splitlines()
                 if line.startswith(f'RATIO {dtype} compiled')]
        assert len(ratio) == 1, out
        assert re.search(r'ours/mmpretrain throughput \d+\.\d+x; compiled/'
                         r'eager ours \d+\.\d+x, mmpretrain \d+\.\d+x; ours '
                         r'eager cells/static \d+\.\d+x', ratio[0]), ratio[0]
    # the fp32 half times mmpretrain in fp32: the bf16 half does not again
    assert 'mmpretrain-fp32' not in out
    # the static path's masked windows run the explicit expression
    assert 'SDPA kernels in one step of ours-static: none' in out
