# Copyright (c) OpenMMLab. All rights reserved.
"""A CheckpointHook whose checkpoints survive a kill at any moment."""
import glob
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

#: Suffix of a checkpoint being written (``.<name>.partial``).
PARTIAL_SUFFIX = '.partial'


def _fsync_path(path: str) -> None:
    """Flush a file (or a directory entry) to disk; best effort on
    platforms that cannot open directories."""
    flags = os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) \
        if osp.isdir(path) else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new
    content, never a partial one (temporary file + ``os.replace``).

    Args:
        path (str): Target file.
        text (str): New content.
    """
    tmp = f'{path}{PARTIAL_SUFFIX}'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(osp.dirname(osp.abspath(path)))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` that never leaves a broken
    checkpoint behind.

    mmengine 0.10.7 writes ``epoch_N.pth`` in place, deletes the oldest
    checkpoint (``max_keep_ckpts``) *before* writing the new one and writes
    ``last_checkpoint`` in place; a run killed meanwhile can be left with a
    truncated newest file and, with ``max_keep_ckpts=1``, no complete
    checkpoint at all. This hook, for local directories:

    1. writes the checkpoint to ``.<name>.partial`` in the same directory,
       fsyncs it and renames it to ``<name>`` with ``os.replace`` (atomic);
    2. only then rewrites ``last_checkpoint`` (temporary file +
       ``os.replace``), so it only ever names a complete file;
    3. only then deletes checkpoints beyond ``max_keep_ckpts``;
    4. removes ``.*.partial`` leftovers of a killed run in ``before_train``.

    For other backends (``out_dir`` on s3/petrel...) it behaves as
    :class:`CheckpointHook`. Best-metric checkpoints (``save_best``) are
    written by the parent class as before.

    Args:
        **kwargs: Arguments of :class:`mmengine.hooks.CheckpointHook`.
    """

    def _is_local(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend)

    def before_train(self, runner) -> None:
        """Set up as the parent and clean up partial files of a killed run.

        Args:
            runner (Runner): The runner.
        """
        super().before_train(runner)
        if self._is_local() and is_main_process() and osp.isdir(
                self.out_dir):
            pattern = osp.join(
                glob.escape(self.out_dir), f'.*{PARTIAL_SUFFIX}')
            for path in glob.glob(pattern):
                os.remove(path)
                runner.logger.warning(
                    f'Removed {path}, a checkpoint whose writing was '
                    'interrupted')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save checkpoint ``step`` atomically, then update
        ``last_checkpoint``, then drop outdated checkpoints.

        Args:
            runner (Runner): The runner.
            step (int): Epoch or iteration number of the checkpoint.
            meta (dict): Meta information saved in the checkpoint.
        """
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)

        drop = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                drop = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        partial_name = f'.{ckpt_filename}{PARTIAL_SUFFIX}'
        runner.save_checkpoint(
            self.out_dir,
            partial_name,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return
        partial = osp.join(self.out_dir, partial_name)
        _fsync_path(partial)
        os.replace(partial, self.last_ckpt)
        _fsync_path(self.out_dir)
        atomic_write_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)

        if drop is not None:
            old = osp.join(self.out_dir, self.filename_tmpl.format(drop))
            if osp.isfile(old):
                os.remove(old)
