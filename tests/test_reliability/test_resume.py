"""Pretraining runs (tools/train.py, the tiny demo config with its
SeededSampler, CPU) killed with SIGKILL and resumed with --resume continue
bit for bit like unbroken runs, in fp32:

* epoch-based, the config's persistent data workers, killed mid-epoch,
  resumed from the last epoch checkpoint, with the same and with another
  number of workers;
* iteration-based, killed at a random iteration, then killed again while
  writing a checkpoint;
* two gloo ranks under torchrun, seeded per rank, one rank killed: the
  other stops within a bounded time with a message naming the failure,
  and the resumed run equals the unbroken one on both ranks.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from demo_data import make_imagenet_folder

from mixmae_mm.engine import safe_torch_load

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEMO = ROOT / 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'

pytestmark = pytest.mark.slow  # training processes, ~2-3 min in all

COMMON = """
_base_ = ['{demo}']
custom_imports = dict(
    imports=['mixmae_mm', '_kill_hooks'], allow_failed_imports=False)
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='RecordLossHook', path='{losses}'),
    dict(type='KillHook'),
]
train_dataloader = dict(
    batch_size={batch}, dataset=dict(data_root='{data}'){loader})
"""

# 16 images, batch 4: 4 iterations per epoch; the demo config's 2
# persistent workers (per-sample seeds from its SeededSampler)
EPOCH_BASED = """
train_cfg = dict(max_epochs=3)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1))
"""

# the SeededSampler around an InfiniteSampler
ITER_LOADER = """,
    sampler=dict(sampler=dict(_delete_=True, type='InfiniteSampler',
                              shuffle=True))"""
ITER_BASED = """
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=6)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=1,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
"""


def _env(**env):
    """Subprocess environment: the helper hooks on PYTHONPATH, one thread
    per process (identical numerics in every run, and the unbroken run can
    go in parallel with the broken ones on 2 cores)."""
    full = dict(os.environ, PYTHONPATH=f'{ROOT}{os.pathsep}{HERE}',
                OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    for k in ('KILL_AFTER_ITER', 'KILL_DURING_WRITE', 'KILL_RANK',
              'KILL_STAMP'):
        full.pop(k, None)
    full.update({k: str(v) for k, v in env.items()})
    return full


def _cmd(cfg, work, resume=False, options=()):
    return [sys.executable, 'tools/train.py', str(cfg), '--work-dir',
            str(work)] + (['--resume'] if resume else []) + (
                ['--cfg-options', *options] if options else [])


def _train(cfg, work, resume=False, options=(), **env):
    return subprocess.run(_cmd(cfg, work, resume, options), cwd=ROOT,
                          env=_env(**env), capture_output=True, text=True,
                          timeout=600)


def _start(cmd, **env):
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc):
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _losses(path, rank=0):
    """{iteration: [loss, ...]} of one rank, every time it was trained."""
    out = {}
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line)
        if rec['rank'] == rank:
            out.setdefault(rec['iter'], []).append(float.fromhex(rec['loss']))
    return out


def _configs(tmp, extra, batch, loader='', **names):
    data = tmp / 'imagenet'
    if not data.exists():
        make_imagenet_folder(str(data), num_train=4, num_val=1, size=128)
    out = {}
    for name in names:
        cfg = tmp / f'{name}.py'
        cfg.write_text(
            COMMON.format(demo=DEMO, data=data, batch=batch, loader=loader,
                          losses=tmp / f'{name}.jsonl') + extra)
        out[name] = cfg
    return out


def _assert_equal_losses(runs, unbroken, iters):
    assert sorted(unbroken) == iters
    # the losses differ from one iteration to the next, so equality is
    # not trivial
    assert len({unbroken[i][0] for i in iters}) == len(iters)
    for name, losses in runs.items():
        for it, values in losses.items():
            for v in values:
                assert v == unbroken[it][0], (name, it, v, unbroken[it][0])


# ------------------------------------------------------------ epoch-based
@pytest.fixture(scope='module')
def epoch_scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('epoch')
    cfg = _configs(tmp, EPOCH_BASED, 4, unbroken=1, broken=1, other=1)
    res = {}
    unbroken = _start(_cmd(cfg['unbroken'], tmp / 'unbroken'))
    work = tmp / 'broken'
    # killed after iteration 7: in epoch 2, after epoch_1.pth
    res['killed'] = _train(cfg['broken'], work, KILL_AFTER_ITER=7)
    shutil.copytree(work, tmp / 'other')
    res['resumed'] = _train(cfg['broken'], work, resume=True)
    # the same checkpoint resumed without data workers
    res['other_workers'] = _train(
        cfg['other'], tmp / 'other', resume=True,
        options=['train_dataloader.num_workers=0',
                 'train_dataloader.persistent_workers=False'])
    res['unbroken'] = _finish(unbroken)
    res['losses'] = {n: _losses(tmp / f'{n}.jsonl') for n in cfg}
    return res


def test_epoch_based_persistent_workers_resume_exactly(epoch_scenario):
    res = epoch_scenario
    assert res['unbroken'].returncode == 0, res['unbroken'].stderr[-3000:]
    assert res['killed'].returncode == -signal.SIGKILL
    for name in ('resumed', 'other_workers'):
        log = res[name].stdout + res[name].stderr
        assert res[name].returncode == 0, log[-3000:]
        assert re.search(r'resumed epoch: 1, iter: 4\b', log)
        assert 'Resume is not exact' not in log
    losses = res['losses']
    # iterations 1-7 by the killed run, 5-12 by the resumed ones (5-7
    # twice in 'broken')
    assert sorted(losses['broken']) == list(range(1, 13))
    assert [len(losses['broken'][i]) for i in (4, 5, 7, 8)] == [1, 2, 2, 1]
    assert sorted(losses['other']) == list(range(5, 13))
    _assert_equal_losses(
        dict(broken=losses['broken'], other_workers=losses['other']),
        losses['unbroken'], list(range(1, 13)))


# -------------------------------------------------------- iteration-based
@pytest.fixture(scope='module')
def iter_scenario(tmp_path_factory):
    """U unbroken (6 iterations); A killed after a random iteration k in
    2-4; B --resume from iter_k, killed halfway through writing
    iter_{k+2}.pth; C --resume again (from iter_{k+1}) to the end."""
    tmp = tmp_path_factory.mktemp('iter')
    cfg = _configs(tmp, ITER_BASED, 4, ITER_LOADER, unbroken=1, broken=1)
    k = random.Random().randint(2, 4)
    res = dict(k=k)
    unbroken = _start(_cmd(cfg['unbroken'], tmp / 'unbroken'))
    work = tmp / 'broken'
    res['A'] = _train(cfg['broken'], work, KILL_AFTER_ITER=k)
    res['after_A'] = (work / 'last_checkpoint').read_text() \
        if (work / 'last_checkpoint').exists() else None
    res['B'] = _train(cfg['broken'], work, resume=True,
                      KILL_DURING_WRITE=f'iter_{k + 2}.pth')
    last = (work / 'last_checkpoint').read_text()
    res['after_B'] = dict(
        last=last,
        files=sorted(p.name for p in work.iterdir() if '.pth' in p.name),
        meta=safe_torch_load(last)['meta'] if os.path.isfile(last) else None)
    res['C'] = _train(cfg['broken'], work, resume=True)
    res['after_C'] = sorted(p.name for p in work.iterdir()
                            if '.pth' in p.name)
    res['U'] = _finish(unbroken)
    res['unbroken'] = _losses(tmp / 'unbroken.jsonl')
    res['broken'] = _losses(tmp / 'broken.jsonl')
    return res


def test_iter_based_resume_at_a_random_iteration_is_exact(iter_scenario):
    res, k = iter_scenario, iter_scenario['k']
    assert res['U'].returncode == 0, res['U'].stderr[-3000:]
    assert res['A'].returncode == -signal.SIGKILL, (k, res['A'].stderr[-3000:])
    assert res['after_A'].endswith(f'iter_{k}.pth'), k
    assert re.search(rf'resumed epoch: \d+, iter: {k}\b',
                     res['B'].stdout + res['B'].stderr), k
    # 1..k from A, k+1..k+2 from B, k+2 again and on from C
    broken = res['broken']
    assert sorted(broken) == [1, 2, 3, 4, 5, 6], k
    assert len(broken[k + 2]) == 2, k
    _assert_equal_losses(dict(broken=broken), res['unbroken'],
                         [1, 2, 3, 4, 5, 6])


def test_kill_while_writing_checkpoint_resumes_from_previous(iter_scenario):
    res, k = iter_scenario, iter_scenario['k']
    assert res['B'].returncode == -signal.SIGKILL, res['B'].stderr[-3000:]
    after = res['after_B']
    # the half-written file never got the final name; last_checkpoint
    # still names the complete previous checkpoint (max_keep_ckpts=1 kept
    # it, since old files are removed only after the new one is complete)
    assert after['last'].endswith(f'iter_{k + 1}.pth'), k
    assert after['files'] == [f'.iter_{k + 2}.pth.partial',
                              f'iter_{k + 1}.pth'], k
    assert after['meta']['iter'] == k + 1 and 'rng_states' in after['meta']
    c = res['C']
    assert c.returncode == 0, c.stderr[-3000:]
    assert re.search(rf'resumed epoch: \d+, iter: {k + 1}\b',
                     c.stdout + c.stderr)
    assert res['after_C'] == ['iter_6.pth']  # partial cleaned up


# ------------------------------------------------- two ranks, one killed
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dist(cfg, work, resume=False, **env):
    cmd = ['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir',
           str(work)] + (['--resume'] if resume else [])
    res = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=_env(PYTHON=sys.executable, PORT=_free_port(), **env))
    return res, time.time()


@pytest.fixture(scope='module')
def dist_scenario(tmp_path_factory):
    """Two gloo ranks, 16 images, batch 2 per rank: 4 iterations per epoch,
    2 epochs. Each rank seeded on its own (``diff_rank_seed=True``, as the
    ImageNet configs): its own masks, its own saved generator states. Rank 1
    is killed after iteration 6 (epoch 2)."""
    tmp = tmp_path_factory.mktemp('dist')
    extra = EPOCH_BASED.replace('max_epochs=3', 'max_epochs=2') + \
        'randomness = dict(seed=0, diff_rank_seed=True)\n'
    cfg = _configs(tmp, extra, 2, unbroken=1, broken=1)
    res = {}
    res['unbroken'], _ = _dist(cfg['unbroken'], tmp / 'unbroken')
    stamp = tmp / 'killed_at'
    res['killed'], res['killed_end'] = _dist(
        cfg['broken'], tmp / 'broken', KILL_AFTER_ITER=6, KILL_RANK=1,
        KILL_STAMP=stamp)
    res['killed_at'] = float(stamp.read_text()) if stamp.exists() else None
    res['rank0_before_resume'] = _losses(tmp / 'broken.jsonl', rank=0)
    res['resumed'], _ = _dist(cfg['broken'], tmp / 'broken', resume=True)
    res['losses'] = {
        (n, r): _losses(tmp / f'{n}.jsonl', rank=r)
        for n in cfg for r in (0, 1)
    }
    return res


def test_killed_rank_stops_the_others_in_bounded_time(dist_scenario):
    res = dist_scenario
    assert res['unbroken'].returncode == 0, res['unbroken'].stderr[-3000:]
    killed = res['killed']
    log = killed.stdout + killed.stderr
    assert killed.returncode != 0 and res['killed_at'] is not None, log[-3000:]
    # torchrun notices the dead rank, stops rank 0 and names the failure
    waited = res['killed_end'] - res['killed_at']
    assert waited < 60, waited
    assert re.search(r'rank\s*:\s*1 \(local_rank: 1\)', log), log[-3000:]
    assert re.search(r'Signal 9 \(SIGKILL\)|exitcode\s*:\s*-9', log)
    # rank 0 went no further than the iteration it was in
    assert max(res['rank0_before_resume']) in (6, 7)


def test_two_rank_resume_equals_unbroken_on_both_ranks(dist_scenario):
    res = dist_scenario
    log = res['resumed'].stdout + res['resumed'].stderr
    assert res['resumed'].returncode == 0, log[-3000:]
    assert re.search(r'resumed epoch: 1, iter: 4\b', log)
    assert 'Resume is not exact' not in log
    losses = res['losses']
    for rank in (0, 1):
        broken = losses[('broken', rank)]
        assert sorted(broken) == list(range(1, 9)), (rank, sorted(broken))
        _assert_equal_losses({f'rank {rank}': broken},
                             losses[('unbroken', rank)], list(range(1, 9)))
    # the ranks trained on different shards
    assert losses[('unbroken', 0)][1] != losses[('unbroken', 1)][1]
