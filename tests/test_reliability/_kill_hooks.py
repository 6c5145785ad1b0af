"""Test-only hooks for the resume tests, imported by the training
subprocess through ``custom_imports`` (this folder is on its PYTHONPATH).

* ``RecordLossHook(path)``: appends ``{"iter": n, "rank": r, "loss":
  float.hex}`` per iteration (exact values).
* ``KillHook``: ``KILL_AFTER_ITER=k`` SIGKILLs the process after iteration
  k (after the checkpoint hook saved), only on rank ``KILL_RANK`` if that
  is set, first writing the time to the file ``KILL_STAMP`` if that is set;
  ``KILL_DURING_WRITE=name`` SIGKILLs it in the middle of writing the
  checkpoint file whose name contains ``name`` (half of the bytes written).
"""
import json
import os
import signal
import time

from mmengine.dist import get_rank

from mmengine.fileio.backends import local_backend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RecordLossHook(Hook):
    priority = 'NORMAL'

    def __init__(self, path):
        self.path = path

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        loss = float(outputs['loss'].item()).hex()
        with open(self.path, 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, rank=get_rank(),
                                    loss=loss)) + '\n')


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

    def before_run(self, runner):
        name = os.environ.get('KILL_DURING_WRITE')
        if not name:
            return
        original = local_backend.LocalBackend.put

        def put(backend, obj, filepath):
            if name in os.path.basename(str(filepath)):
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                _die()
            return original(backend, obj, filepath)

        local_backend.LocalBackend.put = put

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        rank = os.environ.get('KILL_RANK')
        if runner.iter + 1 != int(os.environ.get('KILL_AFTER_ITER', -1)) or \
                rank is not None and int(rank) != get_rank():
            return
        if os.environ.get('KILL_STAMP'):
            with open(os.environ['KILL_STAMP'], 'w') as f:
                f.write(repr(time.time()))
        _die()
