"""NonFiniteLossHook, AtomicCheckpointHook and RandomStateHook with small
in-process runners."""
import errno
import os
import re
import struct
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mixmae_mm  # noqa: F401
from mixmae_mm.engine import (AtomicCheckpointHook, CorruptCheckpointError,
                              NonFiniteLossHook, RandomStateHook,
                              safe_torch_load)


class ToyModel(BaseModel):
    """Loss = mean((W x * noise)^2) with noise from the global torch RNG,
    like MixMAE's mask."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.lin(x) * torch.rand(x.shape[0], 2)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyData(Dataset):
    """Item i is i + numpy noise (an 'augmentation'); NaN for ``bad``
    items; 1e30 for ``inf`` items (its square overflows float32 to inf)."""

    def __init__(self, n=8, bad=(), inf=()):
        self.n, self.bad, self.inf = n, set(bad), set(inf)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i in self.bad or i in self.inf:
            value = float('nan') if i in self.bad else 1e30
            return dict(inputs=torch.full((3, ), value))
        noise = torch.from_numpy(np.random.rand(3).astype(np.float32))
        return dict(inputs=torch.full((3, ), float(i)) + noise)


class LossRecorder(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.losses = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses[runner.iter + 1] = float(outputs['loss'])


def make_runner(work_dir, hooks, n=8, bad=(), train_cfg=None, shuffle=False,
                ckpt=None, inf=(), workers=0, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=ToyData(n, bad, inf),
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            batch_size=2,
            num_workers=workers),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=train_cfg or dict(by_epoch=False, max_iters=5),
        default_hooks=dict(checkpoint=ckpt or dict(
            type='CheckpointHook', interval=1000)),
        custom_hooks=hooks,
        randomness=dict(seed=0),
        **kwargs)


# ------------------------------------------------------- NonFiniteLossHook
def test_nan_loss_stops_with_iteration_and_hint(tmp_path):
    # items 4, 5 form the third batch (shuffle off, batch 2)
    runner = make_runner(tmp_path, [NonFiniteLossHook()], bad=[5])
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    msg = str(info.value)
    assert 'Non-finite loss (nan) at iteration 3 (epoch 1)' in msg
    assert 'learning rate' in msg and "action='skip'" in msg
    # the NaN never reached the weights
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_without_the_hook_nan_silently_poisons_the_weights(tmp_path):
    runner = make_runner(tmp_path, [], bad=[5])
    runner.train()  # no error at all
    assert not torch.isfinite(runner.model.lin.weight).all()


def test_inf_loss_is_caught_too(tmp_path):
    runner = make_runner(tmp_path, [NonFiniteLossHook()], inf=[2])
    with pytest.raises(FloatingPointError, match=r'\(inf\) at iteration 2 '):
        runner.train()


def test_nan_loss_skipped_when_configured(tmp_path):
    runner = make_runner(tmp_path,
                         [dict(type='NonFiniteLossHook', action='skip')],
                         bad=[5])
    runner.train()
    assert runner.iter == 5  # trained to the end
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert runner.message_hub.get_info('nonfinite_loss_skips') == 1


def test_skip_gives_up_after_consecutive_bad_steps(tmp_path):
    runner = make_runner(
        tmp_path,
        [NonFiniteLossHook(action='skip', max_consecutive_skips=2)],
        bad=range(8))
    with pytest.raises(FloatingPointError, match='2 steps in a row'):
        runner.train()


def test_nonfinite_hook_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'raise' or 'skip'"):
        NonFiniteLossHook(action='ignore')
    with pytest.raises(ValueError, match='max_consecutive_skips'):
        NonFiniteLossHook(action='skip', max_consecutive_skips=0)


# ---------------------------------------------------- AtomicCheckpointHook
class Killed(BaseException):
    """Stands for SIGKILL in the middle of writing a file."""


class FakeRunner:
    """What CheckpointHook._save_checkpoint_with_step uses of a Runner; the
    save writes half a file and 'dies' when ``die_on`` is the step."""

    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.logger = MMLogger.get_instance(f'fake_{uuid.uuid4().hex}')
        self.message_hub = MessageHub.get_instance(f'fake_{uuid.uuid4().hex}')
        self.die_on = None
        self.step = 0

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        path = os.path.join(out_dir, filename)
        data = {'step': torch.tensor(self.step)}
        if self.step == self.die_on:
            with open(path, 'wb') as f:
                f.write(b'PK\x03\x04 half a zip')
            raise Killed
        torch.save(data, path)


def _save_steps(hook, runner, steps, die_on=None):
    runner.die_on = die_on
    for step in steps:
        runner.step = step
        hook._save_checkpoint_with_step(runner, step, meta={})


@pytest.mark.parametrize('max_keep', [1, 2, -1])
def test_kill_while_writing_keeps_previous_checkpoint(tmp_path, max_keep):
    runner = FakeRunner(tmp_path)
    hook = AtomicCheckpointHook(interval=1, by_epoch=False,
                                max_keep_ckpts=max_keep)
    hook.before_train(runner)
    _save_steps(hook, runner, [1, 2])
    with pytest.raises(Killed):
        _save_steps(hook, runner, [3], die_on=3)
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last == str(tmp_path / 'iter_2.pth')
    assert torch.load(last)['step'] == 2  # complete and loadable
    assert not (tmp_path / 'iter_3.pth').exists()
    assert (tmp_path / '.iter_3.pth.partial').exists()
    # the next run cleans the partial file up and saves normally
    hook2 = AtomicCheckpointHook(interval=1, by_epoch=False,
                                 max_keep_ckpts=max_keep)
    hook2.before_train(runner)
    assert not (tmp_path / '.iter_3.pth.partial').exists()
    _save_steps(hook2, runner, [3])
    assert torch.load(tmp_path / 'iter_3.pth')['step'] == 3
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_3.pth')


def test_max_keep_ckpts_still_applies(tmp_path):
    runner = FakeRunner(tmp_path)
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=2)
    hook.before_train(runner)
    _save_steps(hook, runner, [1, 2, 3, 4])
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == [
        'iter_3.pth', 'iter_4.pth'
    ]
    assert runner.message_hub.get_info('keep_ckpt_ids') == [3, 4]


def test_stock_checkpoint_hook_loses_everything_control(tmp_path):
    """Why the hook exists: mmengine's CheckpointHook with max_keep_ckpts=1
    deletes the old checkpoint before writing the new one in place."""
    runner = FakeRunner(tmp_path)
    hook = CheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.before_train(runner)
    _save_steps(hook, runner, [1, 2])
    with pytest.raises(Killed):
        _save_steps(hook, runner, [3], die_on=3)
    last = (tmp_path / 'last_checkpoint').read_text()
    assert not os.path.exists(last)  # names a deleted file
    with pytest.raises(Exception):
        torch.load(tmp_path / 'iter_3.pth')  # and the new one is broken


def test_atomic_checkpoint_hook_in_a_real_runner(tmp_path):
    runner = make_runner(
        tmp_path, [],
        ckpt=dict(type='AtomicCheckpointHook', interval=2, by_epoch=False,
                  max_keep_ckpts=1))
    runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_5.pth']
    assert not list(tmp_path.glob('.*.partial'))
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path /
                                                             'iter_5.pth')


# --------------------------------------------------------- RandomStateHook
def _resume_case(tmp_path, train_cfg, ckpt, resume_name, with_hook,
                 monkeypatch):
    # the infinite iterator sleeps 2 s at each epoch end; not needed here
    monkeypatch.setattr('mmengine.runner.loops.time.sleep', lambda s: None)
    rec_a = LossRecorder()
    hooks = [RandomStateHook()] if with_hook else []
    a = make_runner(tmp_path / 'a', hooks + [rec_a], train_cfg=train_cfg,
                    ckpt=ckpt, shuffle=True)
    a.train()
    rec_b = LossRecorder()
    hooks = [RandomStateHook()] if with_hook else []
    b = make_runner(tmp_path / 'b', hooks + [rec_b], train_cfg=train_cfg,
                    ckpt=ckpt, shuffle=True,
                    load_from=str(tmp_path / 'a' / resume_name), resume=True)
    b.train()
    return rec_a.losses, rec_b.losses


@pytest.mark.parametrize('with_hook', [True, False])
def test_iter_based_resume_continues_random_streams(tmp_path, with_hook,
                                                    monkeypatch):
    # 8 items, batch 2: 4 iterations per epoch; resume at 3 replays 3
    # batches, then iteration 5 starts a new epoch (new iterator seed)
    a, b = _resume_case(
        tmp_path, dict(by_epoch=False, max_iters=7),
        dict(type='AtomicCheckpointHook', interval=1, by_epoch=False),
        'iter_3.pth', with_hook, monkeypatch)
    assert sorted(b) == [4, 5, 6, 7]
    same = all(a[i] == b[i] for i in b)
    assert same == with_hook, (a, b)


@pytest.mark.parametrize('with_hook', [True, False])
def test_epoch_based_resume_continues_random_streams(tmp_path, with_hook,
                                                     monkeypatch):
    a, b = _resume_case(
        tmp_path, dict(by_epoch=True, max_epochs=3),
        dict(type='AtomicCheckpointHook', interval=1), 'epoch_1.pth',
        with_hook, monkeypatch)
    assert sorted(b) == [5, 6, 7, 8, 9, 10, 11, 12]
    same = all(a[i] == b[i] for i in b)
    assert same == with_hook, (a, b)


@pytest.mark.parametrize('case', ['workers', 'mid-epoch'])
def test_inexact_resumes_are_named_in_a_warning(tmp_path, case):
    # unseeded samples in 2 workers; or an epoch-based loop resumed at
    # iteration 3 of a 4-iteration epoch
    workers, ckpt, name = (2, dict(type='AtomicCheckpointHook', interval=1),
                           'epoch_1.pth') if case == 'workers' else (
        0, dict(type='AtomicCheckpointHook', interval=3, by_epoch=False),
        'iter_3.pth')
    train_cfg = dict(by_epoch=True, max_epochs=2)
    make_runner(tmp_path / 'a', [RandomStateHook()], workers=workers,
                train_cfg=train_cfg, ckpt=ckpt).train()
    b = make_runner(tmp_path / 'b', [RandomStateHook()], workers=workers,
                    train_cfg=train_cfg, resume=True,
                    load_from=str(tmp_path / 'a' / name))
    b.train()
    expected = {
        'workers': 'Resume is not exact: 2 data workers augment with '
        'generators that checkpoints do not hold',
        'mid-epoch': 'Resume is not exact: resuming at iteration 3, inside '
        'an epoch of 4 iterations'
    }[case]
    assert expected in _log_text(b)
    # the seeded and the epoch-end cases are silent (test_resume.py)


def test_load_from_without_resume_does_not_touch_rng(tmp_path, monkeypatch):
    monkeypatch.setattr('mmengine.runner.loops.time.sleep', lambda s: None)
    a = make_runner(tmp_path / 'a', [RandomStateHook()],
                    ckpt=dict(type='CheckpointHook', interval=2,
                              by_epoch=False))
    a.train()
    hook = RandomStateHook()
    b = make_runner(tmp_path / 'b', [hook],
                    load_from=str(tmp_path / 'a' / 'iter_2.pth'))
    b.train()  # fine-tuning style: starts at 0, states not applied
    assert b.iter == 5
    assert hook._loaded is None


# ----------------------------------------- faults on the checkpoint path
ATOMIC = dict(type='AtomicCheckpointHook', interval=1, by_epoch=False)


def _log_text(runner):
    return (Path(runner.log_dir) / f'{runner.timestamp}.log').read_text()


def _disk_full_on(name, monkeypatch):
    """The file system fills up while ``name`` is written (half of it)."""
    original = LocalBackend.put

    def put(backend, obj, filepath):
        if name in os.path.basename(str(filepath)):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(backend, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)


def test_disk_full_while_saving_loses_nothing(tmp_path, monkeypatch):
    unbroken = LossRecorder()
    torch.manual_seed(0)  # ToyModel is built before the Runner seeds
    make_runner(tmp_path / 'u', [RandomStateHook(), unbroken],
                shuffle=True).train()
    work = tmp_path / 'w'
    _disk_full_on('iter_4', monkeypatch)
    torch.manual_seed(0)
    with pytest.raises(OSError) as err:
        make_runner(work, [RandomStateHook()], shuffle=True,
                    ckpt=dict(ATOMIC, interval=2, max_keep_ckpts=1)).train()
    assert err.value.errno == errno.ENOSPC
    msg = str(err.value)
    assert f'Could not write checkpoint {work / "iter_4.pth"}' in msg
    assert re.search(r'\d+\.\d MiB free in ', msg)
    assert f'previous checkpoint ({work / "iter_2.pth"})' in msg
    # the previous checkpoint and last_checkpoint are intact, the partial
    # file is gone
    assert sorted(p.name for p in work.iterdir() if 'pth' in p.name) == [
        'iter_2.pth'
    ]
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert safe_torch_load(work / 'iter_2.pth')['meta']['iter'] == 2
    # space freed: --resume continues exactly
    monkeypatch.undo()
    resumed = LossRecorder()
    make_runner(work, [RandomStateHook(), resumed], shuffle=True,
                ckpt=dict(ATOMIC, interval=2), resume=True).train()
    assert resumed.losses == {i: unbroken.losses[i] for i in (3, 4, 5)}


def _three_checkpoints(work):
    make_runner(work, [], ckpt=dict(ATOMIC), train_cfg=dict(
        by_epoch=False, max_iters=3)).train()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_3.pth')


def _damage(path, how):
    data = bytearray(path.read_bytes())
    if how == 'truncated':
        path.write_bytes(bytes(data[:len(data) // 2]))
    elif how == 'flipped byte':
        # one byte of a tensor's storage record (zip local header: 30 bytes
        # + name + extra field)
        with zipfile.ZipFile(path) as archive:
            info = next(i for i in archive.infolist()
                        if '/data/' in i.filename and i.file_size)
        names = struct.unpack_from('<HH', data, info.header_offset + 26)
        data[info.header_offset + 30 + sum(names)] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()


@pytest.mark.parametrize('how', ['truncated', 'flipped byte', 'missing'])
def test_auto_resume_falls_back_to_newest_complete(tmp_path, how):
    work = tmp_path / 'w'
    _three_checkpoints(work)
    _damage(work / 'iter_3.pth', how)
    rec = LossRecorder()
    runner = make_runner(work, [rec], ckpt=ATOMIC, resume=True)
    runner.train()
    assert sorted(rec.losses) == [3, 4, 5]  # resumed after iteration 2
    log = _log_text(runner)
    what = {'truncated': 'is not a complete zip archive',
            'flipped byte': 'has a damaged record: archive/',
            'missing': 'does not exist'}[how]
    assert f'names {work / "iter_3.pth"}, which {what}' in log
    assert how != 'flipped byte' or 'fails its CRC-32 check' in log
    assert f'Resuming from {work / "iter_2.pth"} instead' in log
    assert 'resume_fallback=False' in log


def test_auto_resume_without_last_checkpoint_file_warns(tmp_path):
    work = tmp_path / 'w'
    _three_checkpoints(work)
    (work / 'last_checkpoint').unlink()
    rec = LossRecorder()
    runner = make_runner(work, [rec], ckpt=ATOMIC, resume=True)
    runner.train()
    assert sorted(rec.losses) == [4, 5]
    assert f'{work} has no last_checkpoint file. Resuming from ' \
        f'{work / "iter_3.pth"}' in _log_text(runner)


def test_fallback_off_stops_with_both_files_named(tmp_path):
    work = tmp_path / 'w'
    _three_checkpoints(work)
    _damage(work / 'iter_3.pth', 'truncated')
    runner = make_runner(work, [], resume=True,
                         ckpt=dict(ATOMIC, resume_fallback=False))
    with pytest.raises(CorruptCheckpointError) as err:
        runner.train()
    msg = str(err.value)
    assert f'names {work / "iter_3.pth"}, which is not a complete zip' in msg
    assert f'--resume {work / "iter_2.pth"}' in msg
    assert 'resume_fallback=False' in msg


def test_no_complete_checkpoint_left_is_an_error(tmp_path):
    work = tmp_path / 'w'
    _three_checkpoints(work)
    for i in (1, 2, 3):
        _damage(work / f'iter_{i}.pth', 'truncated')
    with pytest.raises(CorruptCheckpointError, match='holds no other '
                       'complete checkpoint'):
        make_runner(work, [], ckpt=ATOMIC, resume=True).train()


@pytest.mark.parametrize('how', ['truncated', 'flipped byte'])
def test_explicit_resume_of_a_corrupt_file_names_it(tmp_path, how):
    work = tmp_path / 'w'
    _three_checkpoints(work)
    _damage(work / 'iter_3.pth', how)
    runner = make_runner(tmp_path / 'b', [], resume=True,
                         load_from=str(work / 'iter_3.pth'))
    with pytest.raises(CorruptCheckpointError) as err:
        runner.train()
    assert str(err.value).startswith(f'Checkpoint {work / "iter_3.pth"} (')
    # torch alone loads the flipped byte as a wrong value without a word
    if how == 'flipped byte':
        torch.load(work / 'iter_3.pth', weights_only=False)


def test_errors_of_a_sound_file_are_not_called_corruption(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save({'w': torch.ones(2)}, path)

    def no_device(storage, location):
        raise RuntimeError('no such device')

    with pytest.raises(RuntimeError, match='no such device') as err:
        safe_torch_load(path, map_location=no_device)
    assert not isinstance(err.value, CorruptCheckpointError)
