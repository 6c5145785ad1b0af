"""A pretraining run (tools/train.py, tiny demo config, CPU) killed with
SIGKILL and resumed with --resume continues exactly like an unbroken run;
a kill while a checkpoint is written still resumes from the previous one.

Scenario (module fixture, 4 processes, IterBasedTrainLoop, checkpoint
every iteration, max_keep_ckpts=1, 16 images, batch 4 = 4 iterations per
epoch, 6 iterations):

* U: unbroken run, iterations 1-6;
* A: killed (SIGKILL) right after iteration 3 and its checkpoint;
* B: ``--resume`` from iter_3, trains 4 and 5, killed halfway through
  writing iter_5.pth;
* C: ``--resume`` again (from iter_4), trains 5 and 6 to the end.
"""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from demo_data import make_imagenet_folder

from mixmae_mm.engine import safe_torch_load

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEMO = ROOT / 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'

pytestmark = pytest.mark.slow  # four training processes, ~30-50 s

CONFIG = """
_base_ = ['{demo}']
custom_imports = dict(
    imports=['mixmae_mm', '_kill_hooks'], allow_failed_imports=False)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{data}'))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=6)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=1,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='RecordLossHook', path='{losses}'),
    dict(type='KillHook'),
]
"""


def _env(**env):
    """Subprocess environment: the helper hooks on PYTHONPATH, one thread
    per process (identical numerics in every run, and the unbroken run can
    go in parallel with the broken ones on 2 cores)."""
    full = dict(os.environ, PYTHONPATH=f'{ROOT}{os.pathsep}{HERE}',
                OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    for k in ('KILL_AFTER_ITER', 'KILL_DURING_WRITE'):
        full.pop(k, None)
    full.update({k: str(v) for k, v in env.items()})
    return full


def _cmd(cfg, work, resume=False):
    return [sys.executable, 'tools/train.py', str(cfg), '--work-dir',
            str(work)] + (['--resume'] if resume else [])


def _train(cfg, work, resume=False, **env):
    return subprocess.run(_cmd(cfg, work, resume), cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=600)


def _losses(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec['iter'], []).append(float.fromhex(rec['loss']))
    return out


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    data = tmp / 'imagenet'
    make_imagenet_folder(str(data), num_train=4, num_val=1, size=128)

    def config(name):
        cfg = tmp / f'{name}.py'
        cfg.write_text(
            CONFIG.format(demo=DEMO, data=data, losses=tmp / f'{name}.jsonl'))
        return cfg

    res = {}
    unbroken = subprocess.Popen(
        _cmd(config('unbroken'), tmp / 'unbroken'), cwd=ROOT, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cfg = config('broken')
    work = tmp / 'broken'
    res['A'] = _train(cfg, work, KILL_AFTER_ITER=3)
    res['after_A'] = (work / 'last_checkpoint').read_text() \
        if (work / 'last_checkpoint').exists() else None
    res['B'] = _train(cfg, work, resume=True, KILL_DURING_WRITE='iter_5.pth')
    last = (work / 'last_checkpoint').read_text()
    res['after_B'] = dict(
        last=last,
        files=sorted(p.name for p in work.iterdir() if '.pth' in p.name),
        meta=safe_torch_load(last)['meta'] if os.path.isfile(last) else None)
    res['C'] = _train(cfg, work, resume=True)
    res['after_C'] = sorted(p.name for p in work.iterdir()
                            if '.pth' in p.name)
    out, err = unbroken.communicate(timeout=600)
    res['U'] = subprocess.CompletedProcess(unbroken.args,
                                           unbroken.returncode, out, err)
    res['work'] = work
    res['unbroken'] = _losses(tmp / 'unbroken.jsonl')
    res['broken'] = _losses(tmp / 'broken.jsonl')
    return res


def test_unbroken_run_trains(scenario):
    assert scenario['U'].returncode == 0, scenario['U'].stderr[-3000:]
    assert sorted(scenario['unbroken']) == [1, 2, 3, 4, 5, 6]


def test_resume_after_sigkill_matches_unbroken_run(scenario):
    a, u = scenario['A'], scenario['unbroken']
    assert a.returncode == -signal.SIGKILL, a.stderr[-3000:]
    assert scenario['after_A'].endswith('iter_3.pth')
    assert re.search(r'resumed epoch: \d+, iter: 3\b',
                     scenario['B'].stdout + scenario['B'].stderr)
    broken = scenario['broken']
    # 1-3 from run A, 4-5 from B, 5 again and 6 from C: every loss equals
    # the unbroken run's, bit for bit (model, optimizer, lr schedule, data
    # order, augmentation and mixing masks restored)
    assert sorted(broken) == [1, 2, 3, 4, 5, 6]
    assert len(broken[5]) == 2
    for it, values in broken.items():
        for v in values:
            assert v == u[it][0], (it, v, u[it][0])
    # the losses differ from one iteration to the next, so equality is
    # not trivial
    assert len({u[i][0] for i in u}) == 6


def test_kill_while_writing_checkpoint_resumes_from_previous(scenario):
    b, c = scenario['B'], scenario['C']
    assert b.returncode == -signal.SIGKILL, b.stderr[-3000:]
    after = scenario['after_B']
    # the half-written file never got the final name; last_checkpoint
    # still names the complete previous checkpoint (max_keep_ckpts=1 kept
    # it, since old files are removed only after the new one is complete)
    assert after['last'].endswith('iter_4.pth')
    assert after['files'] == ['.iter_5.pth.partial', 'iter_4.pth']
    assert after['meta']['iter'] == 4 and 'rng_states' in after['meta']
    assert c.returncode == 0, c.stderr[-3000:]
    assert re.search(r'resumed epoch: \d+, iter: 4\b', c.stdout + c.stderr)
    assert scenario['after_C'] == ['iter_6.pth']  # partial cleaned up
