"""Distributed and cluster launch scripts (tools/dist_*.sh, slurm_*.sh).

A real 2-process run of tools/dist_train.sh on CPU (gloo) pretrains the tiny
demo model for a few iterations; the slurm scripts, which CI cannot run, are
checked by their dry run (the exact srun command).
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from demo_data import make_imagenet_folder
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / 'tools'
DEMO = ROOT / 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'

# A test-only hook, imported by the ranks through `custom_imports`.
HELPERS = '''
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def _weights(runner):
    model = runner.model
    model = model.module if is_model_wrapper(model) else model
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@HOOKS.register_module(force=True)
class SaveRankWeightsHook(Hook):
    """Save every rank's weights before and after training."""

    def before_train(self, runner):
        torch.save(_weights(runner),
                   os.path.join(runner.work_dir, f'init{get_rank()}.pth'))

    def after_train(self, runner):
        torch.save(_weights(runner),
                   os.path.join(runner.work_dir, f'rank{get_rank()}.pth'))
        from torch._dynamo.utils import counters
        with open(os.path.join(runner.work_dir, f'wrapper{get_rank()}'),
                  'w') as f:
            f.write(f"{type(runner.model).__name__} "
                    f"{counters['stats']['unique_graphs']}")
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(script, *args, env=None, timeout=300):
    env = dict(os.environ, **(env or {}))
    return subprocess.run(['bash', str(TOOLS / script), *map(str, args)],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


#: The compile switch (no code generation; torch 2.1: static shapes, as in
#: tests/test_models/test_compile.py).
_COMPILE = "compile = dict(backend='eager'{})\n".format(
    '' if hasattr(torch.compiler, 'is_compiling') else ', dynamic=False')


@pytest.mark.slow
@pytest.mark.parametrize('compiled', [False, True], ids=['eager', 'compile'])
def test_dist_train_two_cpu_ranks_end_identical(tmp_path, compiled):
    """Two gloo ranks through tools/dist_train.sh; with ``compile`` on, the
    Runner compiles the DDP wrapper's ``train_step``
    (``CompilableDistributedDataParallel``, from the configs' runtime: with
    mmengine's wrapper the compiled step fails in AdamW's ``step``)."""
    data = tmp_path / 'imagenet'
    make_imagenet_folder(str(data), num_train=8, num_val=0, size=128)
    (tmp_path / 'dist_helpers.py').write_text(HELPERS)
    hooks = [
        h.to_dict() for h in Config.fromfile(DEMO).get('custom_hooks', [])
    ] + [dict(type='SaveRankWeightsHook')]
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        textwrap.dedent(f'''
        _base_ = {str(DEMO)!r}
        custom_imports = dict(
            imports=['mixmae_mm', 'dist_helpers'], allow_failed_imports=False)
        custom_hooks = {hooks!r}
        train_dataloader = dict(
            batch_size=4, num_workers=0, persistent_workers=False,
            dataset=dict(data_root={str(data)!r}))
        train_cfg = dict(max_epochs=1)
        default_hooks = dict(logger=dict(interval=2))
        ''') + (_COMPILE if compiled else ''))
    work = tmp_path / 'work'
    res = _run(
        'dist_train.sh',
        cfg,
        2,
        '--work-dir',
        work,
        env=dict(
            PYTHON=sys.executable,
            PORT=str(_free_port()),
            PYTHONPATH=str(tmp_path)))
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log
    assert "dist_cfg: {'backend': 'gloo'}" in log

    # 32 images, 2 ranks, batch 4: 4 iterations per rank, each rank its
    # own shard; only rank 0 logs, once per interval (2)
    lines = [ln for ln in log.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) == 2, lines
    assert '[1][2/4]' in lines[0] and '[1][4/4]' in lines[1]
    assert all('loss:' in ln for ln in lines)
    scalars = list(work.rglob('vis_data/scalars.json'))
    assert len(scalars) == 1
    records = [json.loads(s) for s in scalars[0].read_text().splitlines()]
    assert [r['step'] for r in records if 'loss' in r] == [2, 4]

    init0, init1 = (torch.load(work / f'init{r}.pth') for r in (0, 1))
    rank0, rank1 = (torch.load(work / f'rank{r}.pth') for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 100
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k
    changed = [k for k in rank0 if not torch.equal(rank0[k], init0[k])]
    assert 'backbone.patch_embed.proj.weight' in changed
    assert 'neck.mask_token' in changed
    assert all(torch.equal(init0[k], init1[k]) for k in init0)
    for r in (0, 1):  # the wrapper, and graphs made only when compiled
        wrapper, graphs = (work / f'wrapper{r}').read_text().split()
        assert wrapper == 'CompilableDistributedDataParallel'
        assert (int(graphs) > 0) == compiled, graphs


def _dry(script, *args, **env):
    res = _run(script, *args, env=dict(DRY_RUN='1', **env))
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_dist_scripts_dry_run_print_the_torchrun_command():
    py = 'PYTHONPATH=' + str(ROOT)
    assert _dry(
        'dist_train.sh',
        'cfg.py',
        4,
        '--work-dir',
        'w d',
        PYTHONPATH='',
        NNODES='2',
        NODE_RANK='1',
        PORT='29999',
        MASTER_ADDR='10.0.0.1') == (
            f'env {py} python -m torch.distributed.run --nnodes=2 '
            f'--node_rank=1 --master_addr=10.0.0.1 --nproc_per_node=4 '
            f'--master_port=29999 {ROOT}/tools/train.py cfg.py --launcher '
            f'pytorch --work-dir w\\ d')
    assert _dry(
        'dist_test.sh', 'cfg.py', 'ck.pth', 2, '--out', 'm.json',
        PYTHONPATH='') == (
            f'env {py} python -m torch.distributed.run --nnodes=1 '
            f'--node_rank=0 --master_addr=127.0.0.1 --nproc_per_node=2 '
            f'--master_port=29500 {ROOT}/tools/test.py cfg.py ck.pth '
            f'--launcher pytorch --out m.json')


def test_slurm_scripts_dry_run_print_the_srun_command():
    py = 'PYTHONPATH=' + str(ROOT)
    assert _dry(
        'slurm_train.sh',
        'dev',
        'mixmae',
        'cfg.py',
        'work_dirs/x',
        '--amp',
        PYTHONPATH='',
        GPUS='16',
        SRUN_ARGS='--quotatype=auto --time=1:00:00') == (
            f'env {py} srun -p dev --job-name=mixmae --gres=gpu:8 '
            f'--ntasks=16 --ntasks-per-node=8 --cpus-per-task=5 '
            f'--kill-on-bad-exit=1 --quotatype=auto --time=1:00:00 python '
            f'-u {ROOT}/tools/train.py cfg.py --work-dir=work_dirs/x '
            f'--launcher=slurm --amp')
    assert _dry(
        'slurm_test.sh',
        'dev',
        'eval',
        'cfg.py',
        'ck.pth',
        PYTHONPATH='/opt/x',
        GPUS='2',
        CPUS_PER_TASK='3') == (
            f'env {py}:/opt/x srun -p dev --job-name=eval --gres=gpu:2 '
            f'--ntasks=2 --ntasks-per-node=2 --cpus-per-task=3 '
            f'--kill-on-bad-exit=1 python -u {ROOT}/tools/test.py cfg.py '
            f'ck.pth --launcher=slurm')


@pytest.mark.parametrize('script,nargs', [('dist_train.sh', 2),
                                          ('dist_test.sh', 3),
                                          ('slurm_train.sh', 4),
                                          ('slurm_test.sh', 4)])
def test_scripts_print_usage_on_missing_arguments(script, nargs):
    res = _run(script, *['x'] * (nargs - 1), env=dict(DRY_RUN='1'))
    assert res.returncode == 2
    assert res.stderr.startswith('usage:')
