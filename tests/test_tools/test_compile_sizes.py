"""Smoke test of tools/analysis_tools/compile_sizes.py: it runs, checks the
compiled outputs against eager ones and reports the graphs it counted."""
import re

import pytest
import torch
from _tool_run import run_tool


@pytest.mark.skipif(
    not hasattr(torch.compiler, 'is_compiling'),
    reason='torch 2.1: its dynamic shapes fail on the window reshapes, see '
    'docs/en/compile.md')
def test_compile_sizes_counts_graphs():
    res = run_tool([
        'tools/analysis_tools/compile_sizes.py', '--encoder', 'swin',
        '--sizes', '4', '--min', '256', '--max', '320', '--step', '32'
    ], timeout=600)
    summary = re.search(r'swin width 16: (\d+) graphs for 4 sizes',
                        res.stdout)
    assert summary, res.stdout
    # four sizes: the first size's graph and the symbolic one
    assert int(summary.group(1)) == 2, res.stdout
    assert res.stdout.count('graph ') == 2, res.stdout
