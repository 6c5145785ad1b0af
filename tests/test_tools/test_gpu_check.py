"""tools/analysis_tools/gpu_check.sh, checked on the CPU: its syntax, its
dry run (every command printed, every config path real), the refusal
without CUDA, and that the training overrides it passes build the three
paper configs' Runners with 2-iteration loops on generated data."""
import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = 'tools/analysis_tools/gpu_check.sh'
PRETRAIN = 'configs/mixmae/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py'
DET = ('configs/mixmae/benchmarks/mmdet/'
       'mask-rcnn_swin-b-p4-w14-mixmae-pre_fpn_amp-1x_coco.py')
SEG = ('configs/mixmae/benchmarks/mmseg/swin-base-patch4-window14-mixmae-'
       'pre_upernet_8xb2-amp-160k_ade20k-512x512.py')


def _script(env_extra, timeout=120):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith('GPU_CHECK_') and k not in ('WHEELS_DIR', 'OUT')
    }
    env['PYTHON'] = sys.executable
    env.update(env_extra)
    return subprocess.run(['bash', SCRIPT],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


def _dry_run(out, **extra):
    proc = _script(dict(GPU_CHECK_DRY_RUN='1', OUT=str(out), **extra))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmds = [
        shlex.split(line[2:]) for line in proc.stdout.splitlines()
        if line.startswith('+ ')
    ]
    return proc, cmds


def test_bash_syntax():
    proc = subprocess.run(['bash', '-n', SCRIPT],
                          cwd=ROOT,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_dry_run_prints_every_command(tmp_path):
    proc, cmds = _dry_run(tmp_path)
    assert not list(tmp_path.iterdir()), 'a dry run writes nothing'
    scripts = [c[1] for c in cmds]
    assert scripts == [
        'tools/check_env.py', 'tools/misc/make_demo_data.py', 'tools/train.py',
        'tools/train.py', 'tools/train.py', 'tools/train.py'
    ] + ['tools/analysis_tools/benchmark.py'] * 4
    assert all(c[0] == sys.executable for c in cmds)
    for cmd in cmds:
        for arg in cmd:
            if arg.startswith(('configs/', 'tools/')):
                assert (ROOT / arg).is_file(), arg
    assert cmds[0][2:] == ['--json']
    assert cmds[1][2:] == ['--out', f'{tmp_path}/data']
    trains = [c for c in cmds if c[1] == 'tools/train.py']
    assert [c[2] for c in trains] == [PRETRAIN, PRETRAIN, DET, SEG]
    # the second pretraining run is mmengine's compiled train_step, in its
    # own work dir; the other options are the first run's
    eager, compiled = trains[:2]
    assert compiled[-1] == 'compile=True' and 'compile=True' not in eager
    assert compiled[:-1] == [
        a.replace('/pretrain', '/pretrain_compiled') for a in eager
    ]
    trains = {c[2]: c for c in trains}
    for cfg, cmd in trains.items():
        opts = cmd[cmd.index('--cfg-options') + 1:]
        assert 'train_dataloader.batch_size=2' in opts
        assert {'val_cfg=None', 'val_dataloader=None',
                'val_evaluator=None'} <= set(opts)
        if cfg != PRETRAIN:
            assert 'model.backbone.init_cfg=None' in opts
    bench = [c[2:] for c in cmds if c[1].endswith('benchmark.py')]
    common = [
        '--device', 'cuda', '--dtype', 'bf16', '--steps', '20', '--warmup', '3'
    ]
    compiled = common + ['--batch', '32', '--compile', '--no-mem',
                         '--no-fp32-ref']
    assert bench == [
        common + ['--batch', '32'], compiled,
        compiled + ['--compile-mode', 'reduce-overhead'], common + ['--dense']
    ]
    # every benchmark option exists (the parser refuses unknown ones)
    sys.path.insert(0, str(ROOT / 'tools/analysis_tools'))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    for argv in bench:
        args = benchmark.parse_args(argv)
        assert args.device == 'cuda' and args.dtype == 'bf16'
    assert benchmark.parse_args(bench[2]).compile_mode == 'reduce-overhead'


def test_dry_run_wheels_dir(tmp_path):
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    _, cmds = _dry_run(tmp_path / 'out', WHEELS_DIR=str(wheels))
    pip = cmds[0]
    assert pip[1:4] == ['-m', 'pip', 'install']
    assert '--no-index' in pip
    assert pip[pip.index('--find-links') + 1] == str(wheels)
    for req in ('mmengine==0.10.7', 'mmpretrain==1.2.0', 'mmcv-lite==2.1.0',
                'mmdet==3.3.0', 'mmsegmentation==1.2.2', 'pycocotools', 'ftfy',
                'regex'):
        assert req in pip
    # a CUDA-built full mmcv wheel in the folder is preferred
    (wheels / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl').write_bytes(b'')
    _, cmds = _dry_run(tmp_path / 'out', WHEELS_DIR=str(wheels))
    assert 'mmcv==2.1.0' in cmds[0] and 'mmcv-lite==2.1.0' not in cmds[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_refuses_without_cuda(tmp_path):
    proc = _script(dict(OUT=str(tmp_path / 'out')))
    assert proc.returncode != 0
    assert 'CUDA is not available' in proc.stderr
    assert 'GPU_CHECK_DRY_RUN=1' in proc.stderr
    assert not (tmp_path / 'out').exists()


def _parse_cfg_options(opts):
    """The options exactly as tools/train.py parses them."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *opts]).cfg_options


@pytest.mark.slow
def test_training_overrides_build_two_iteration_runs(tmp_path):
    """Each printed training command's config + overrides builds a Runner
    whose train loop runs 2 iterations of batch 2 on the generated data,
    with no validation and no checkpoint to load (training itself needs
    the GPU: the configs use AmpOptimWrapper)."""
    from demo_data import (make_ade20k, make_coco_instances,
                           make_imagenet_folder)
    from mmengine.config import Config
    from mmengine.runner import Runner
    _, cmds = _dry_run(tmp_path)
    data = tmp_path / 'data'
    # the layout of tools/misc/make_demo_data.py --out DATA, fewer images
    make_imagenet_folder(str(data / 'imagenet'), num_train=2, num_val=1)
    make_coco_instances(str(data / 'coco'), num_train=4, num_val=2)
    make_ade20k(str(data / 'ade' / 'ADEChallengeData2016'), 2, 1)
    expected = {
        PRETRAIN: ('EpochBasedTrainLoop', (3, 224, 224)),
        DET: ('EpochBasedTrainLoop', None),
        SEG: ('IterBasedTrainLoop', None),
    }
    for cmd in cmds:
        if cmd[1] != 'tools/train.py':
            continue
        cfg_path = cmd[2]
        cfg = Config.fromfile(str(ROOT / cfg_path))
        cfg.merge_from_dict(
            _parse_cfg_options(cmd[cmd.index('--cfg-options') + 1:]))
        cfg.work_dir = cmd[cmd.index('--work-dir') + 1]
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # AMP as in paper
        assert cfg.get('val_cfg') is None
        ckpt = cfg.default_hooks.checkpoint  # no 1.4 GB file in OUT
        assert ckpt.save_last is False and ckpt.interval > 1
        runner = Runner.from_cfg(cfg)
        loop = runner.build_train_loop(cfg.train_cfg)
        loop_type, shape = expected[cfg_path]
        assert type(loop).__name__ == loop_type
        assert loop.max_iters == 2, cfg_path
        # mmdet batches through an aspect-ratio batch sampler
        assert (loop.dataloader.batch_size
                or loop.dataloader.batch_sampler.batch_size) == 2
        assert loop.dataloader.num_workers == 2
        item = loop.dataloader.dataset[0]  # the whole pipeline runs
        if shape is not None:
            assert tuple(item['inputs'].shape) == shape
        assert item['inputs'].shape[0] == 3
        if cfg_path == DET:  # COCO's 1333 x 800 resize of a 160 x 128 image
            assert tuple(item['inputs'].shape) == (3, 800, 1000)
            assert len(item['data_samples'].gt_instances) > 0
        if cfg_path == SEG:  # ADE20K labels, 0 ignored (reduce_zero_label)
            assert item['data_samples'].gt_sem_seg.data.shape[1:] == \
                item['inputs'].shape[1:]


FAKE_PYTHON = r'''#!/usr/bin/env bash
# Stands in for a CUDA machine's python: the CUDA probe passes, training
# and benchmark commands print what the real ones log (Mask R-CNN fails),
# everything else (check_env, the summary) runs on the real interpreter.
case "$1" in
    -c) exit 0 ;;
    tools/misc/make_demo_data.py) echo "wrote demo sets" ;;
    tools/train.py)
        if [[ "$2" == *mmdet* ]]; then echo "RuntimeError: boom" >&2; exit 3
        fi
        echo "11/30 07:27:54 - mmengine - INFO - Iter(train) [2/2]  loss: 1.25"
        ;;
    tools/analysis_tools/benchmark.py)
        echo "measured bf16 matmul rate: 700000 GFLOP/s"
        echo "RATIO bf16: ours/mmpretrain throughput 1.30x" ;;
    *) exec "@REAL@" "$@" ;;
esac
'''

STEPS = ('check_env', 'demo_data', 'train_pretrain',
         'train_pretrain_compiled', 'train_maskrcnn', 'train_upernet',
         'bench_pretrain', 'bench_compiled', 'bench_cudagraphs',
         'bench_dense')


def _statuses(summary):
    """Step name -> status column of the summary table."""
    status = {}
    for line in summary.splitlines():
        name = line.split()[0] if line.split() else None
        if name in STEPS:
            status[name] = line[2 + 25:2 + 25 + 40].strip()
    return status


def _fake_python(tmp_path):
    path = tmp_path / 'python'
    path.write_text(FAKE_PYTHON.replace('@REAL@', sys.executable))
    path.chmod(0o755)
    return str(path)


def test_run_records_failures_and_summarises(tmp_path):
    """The non-dry path on a stand-in GPU machine: a failing step is
    recorded and the next ones still run; the summary names each step's
    status and the key lines of its log; the exit code is 1."""
    out = tmp_path / 'out'
    proc = _script(
        dict(OUT=str(out), PYTHON=_fake_python(tmp_path)), timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = (out / 'summary.txt').read_text()
    status = _statuses(summary)
    assert list(status) == list(STEPS), summary
    for name in STEPS:
        expected = 'FAILED (rc 3)' if name == 'train_maskrcnn' else 'OK'
        assert status[name] == expected, (name, summary)
    assert 'Iter(train) [2/2]  loss: 1.25' in summary
    assert 'RATIO bf16: ours/mmpretrain throughput 1.30x' in summary
    assert 'ready: ' in summary  # from check_env.json
    rep = (out / 'check_env.json').read_text()
    assert rep.lstrip().startswith('{')
    assert 'RuntimeError: boom' in (out / 'logs' /
                                    '04_train_maskrcnn.log').read_text()


def test_run_skips_steps_past_the_budget(tmp_path):
    out = tmp_path / 'out'
    proc = _script(
        dict(
            OUT=str(out),
            PYTHON=_fake_python(tmp_path),
            GPU_CHECK_BUDGET_S='0'))
    assert proc.returncode == 1
    status = _statuses((out / 'summary.txt').read_text())
    assert list(status) == list(STEPS)
    # nothing ran: no check_env.json either, so detection and segmentation
    # are skipped as not ready
    assert all(s.startswith('SKIPPED (') for s in status.values()), status
    assert status['train_pretrain'] == 'SKIPPED (budget)'
    assert not (out / 'check_env.json').exists()
