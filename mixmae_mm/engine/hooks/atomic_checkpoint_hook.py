# Copyright (c) OpenMMLab. All rights reserved.
# Derived from mmengine 0.10.7's mmengine/hooks/checkpoint_hook.py
# (Apache License 2.0) by the mixmae_mm contributors.
"""A CheckpointHook whose checkpoints survive a kill at any moment."""
import glob
import os
import os.path as osp
import re
import shutil
from typing import List, Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import find_latest_checkpoint

from ..safe_unpickler import CorruptCheckpointError, checkpoint_damage
from .random_state_hook import RANKS_KEY, gather_rng_states

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


def _free_space(path: str) -> str:
    """Free space on the file system of ``path``, for messages."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return 'unknown space'
    return f'{free / 2**20:.1f} MiB'


def checkpoint_file_problem(path: str) -> Optional[str]:
    """Why the local checkpoint ``path`` cannot be resumed from, ``None``
    if it is complete (see :func:`checkpoint_damage`).

    Args:
        path (str): A local checkpoint file.

    Returns:
        str | None: The problem, as the end of a sentence.
    """
    if not osp.isfile(path):
        return 'does not exist'
    with open(path, 'rb') as f:
        if not f.read(1):
            return 'is empty'
        f.seek(0)
        return checkpoint_damage(f)


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
    4. removes ``.*.partial`` leftovers of a killed run in ``before_train``;
    5. on a failed write (e.g. ``ENOSPC``, disk full) removes the partial
       file and raises an ``OSError`` naming the checkpoint, the free space
       and the previous checkpoint, which ``last_checkpoint`` still names;
    6. stores every rank's generator states in ``meta`` (distributed runs;
       read by :class:`RandomStateHook`);
    7. on auto-resume (``--resume`` without a path), if ``last_checkpoint``
       names a missing, truncated or damaged file (or is missing while
       checkpoints exist), resumes from the newest complete checkpoint of
       that folder with a warning naming both files; with
       ``resume_fallback=False`` it stops with
       :class:`~mixmae_mm.engine.CorruptCheckpointError` instead.

    For other backends (``out_dir`` on s3/petrel...) it behaves as
    :class:`CheckpointHook`. Best-metric checkpoints (``save_best``) are
    written by the parent class as before.

    Args:
        resume_fallback (bool): Let auto-resume fall back to the newest
            complete checkpoint. Defaults to True.
        **kwargs: Arguments of :class:`mmengine.hooks.CheckpointHook`.
    """

    def __init__(self, *args, resume_fallback: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resume_fallback = resume_fallback

    def _is_local(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend)

    def before_run(self, runner) -> None:
        """Check the checkpoint that auto-resume is about to load (mmengine
        calls ``load_or_resume`` after ``before_run``).

        Args:
            runner (Runner): The runner.
        """
        super().before_run(runner)
        if not runner._resume or runner._load_from is not None:
            return  # no resume, or an explicit path (loaded as given)
        last = find_latest_checkpoint(runner.work_dir)
        if last is not None and '://' in last:
            return  # a remote out_dir: not checked here
        folder = osp.dirname(last) if last else runner.work_dir
        problem = checkpoint_file_problem(last) if last else None
        if last and problem is None:
            return
        found = self._newest_complete(folder, skip=last)
        if last is None and found is None:
            return  # nothing to resume: a fresh run, as mmengine does
        named = (f'{osp.join(runner.work_dir, "last_checkpoint")} names '
                 f'{last}, which {problem}' if last else
                 f'{runner.work_dir} has no last_checkpoint file')
        if found is None:
            raise CorruptCheckpointError(
                f'Cannot resume: {named}, and {folder} holds no other '
                'complete checkpoint. Start without --resume.')
        if not self.resume_fallback:
            raise CorruptCheckpointError(
                f'Cannot resume: {named}. The newest complete checkpoint is '
                f'{found}; resume from it with --resume {found}. (Falling '
                'back to it automatically is off: '
                'default_hooks.checkpoint.resume_fallback=False.)')
        runner.logger.warning(
            f'{named}. Resuming from {found} instead, the newest complete '
            'checkpoint (turn this fallback off with '
            'default_hooks.checkpoint.resume_fallback=False).')
        runner._load_from = found

    def _newest_complete(self, folder: str,
                         skip: Optional[str]) -> Optional[str]:
        """The complete checkpoint of ``folder`` with the highest step
        (``filename_tmpl`` names), ``None`` if none."""
        head, _, tail = self.filename_tmpl.partition('{}')
        pattern = re.compile(re.escape(head) + r'(\d+)' + re.escape(tail))
        steps: List[tuple] = []
        for name in os.listdir(folder) if osp.isdir(folder) else ():
            match = pattern.fullmatch(name)
            if match:
                steps.append((int(match.group(1)), osp.join(folder, name)))
        for _, path in sorted(steps, reverse=True):
            if path != skip and checkpoint_file_problem(path) is None:
                return path
        return None

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
        # only rank 0 writes, but every rank passes here: the one moment to
        # collect each rank's generator states for RandomStateHook
        states = gather_rng_states()
        if states is not None:
            meta = dict(meta, **{RANKS_KEY: states})
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)

        ckpt_filename = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, ckpt_filename)
        partial_name = f'.{ckpt_filename}{PARTIAL_SUFFIX}'
        partial = osp.join(self.out_dir, partial_name)
        previous = self.last_ckpt if hasattr(self, 'last_ckpt') else None
        # the bookkeeping goes into the checkpoint's message hub, as in
        # mmengine, so that a resumed run deletes this file in its turn
        drop = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                drop = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        try:
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
        except OSError as err:
            if is_main_process() and osp.exists(partial):
                os.remove(partial)  # give its space back
            raise OSError(
                err.errno,
                f'Could not write checkpoint {path} ({err}); '
                f'{_free_space(self.out_dir)} free in {self.out_dir}. '
                f'Nothing was lost: the previous checkpoint '
                f'({previous or "none this run"}) and last_checkpoint are '
                'unchanged; free space and resume with --resume.') from err

        if not is_main_process():
            return
        _fsync_path(partial)
        os.replace(partial, self.last_ckpt)
        _fsync_path(self.out_dir)
        last_file = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            atomic_write_text(last_file, self.last_ckpt)
        except OSError as err:
            if osp.exists(last_file + PARTIAL_SUFFIX):
                os.remove(last_file + PARTIAL_SUFFIX)
            raise OSError(
                err.errno,
                f'Wrote checkpoint {path} but could not update {last_file} '
                f'({err}); {_free_space(runner.work_dir)} free. It still '
                f'names {previous or "no checkpoint"}; both files are '
                'complete.') from err

        if drop is not None:
            old = osp.join(self.out_dir, self.filename_tmpl.format(drop))
            if osp.isfile(old):
                os.remove(old)
