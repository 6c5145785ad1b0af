# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Save the random number generators with each checkpoint and restore them
on resume, so that a resumed run draws the same mixing masks."""
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch.utils.data import DataLoader

from ...datasets.seeded import SeededSampler

#: Keys in ``checkpoint['meta']``: the saving rank's states, and every
#: rank's (distributed runs).
META_KEY = 'rng_states'
RANKS_KEY = 'rng_states_per_rank'


def get_rng_states() -> Dict[str, Any]:
    """The states of Python's, numpy's and torch's global generators.

    Only plain types and tensors, so that a checkpoint holding them loads
    with ``weights_only=True`` and no extra allow-list entry.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` and, once CUDA is
        initialised, ``cuda`` (one state per device).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = dict(
        python=random.getstate(),
        numpy=(name, [int(k) for k in keys], int(pos), int(has_gauss),
               float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def gather_rng_states() -> Optional[List[Dict[str, Any]]]:
    """Every rank's :func:`get_rng_states`, in rank order; ``None`` when
    not distributed. A collective: all ranks must call it.

    Returns:
        list[dict] | None: The states of ranks 0..world_size-1.
    """
    if get_world_size() < 2:
        return None
    return all_gather_object(get_rng_states())


def set_rng_states(states: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_states` returned.

    Args:
        states (dict): Generator states.
    """
    random.setstate(_to_tuple(states['python']))
    name, keys, pos, has_gauss, cached = states['numpy']
    np.random.set_state(
        (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states['torch'])
    cuda = states.get('cuda')
    if cuda and torch.cuda.is_available() and \
            len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _to_tuple(x):
    """``random.setstate`` wants tuples, whatever a round trip made of
    them."""
    if isinstance(x, (list, tuple)):
        return tuple(_to_tuple(v) for v in x)
    return x


def _inexact_reasons(runner, loader, per_rank) -> List[str]:
    """Why a resume of this run cannot continue the unbroken run's random
    streams exactly (empty when it can)."""
    reasons = []
    loop = runner.train_loop
    length = len(loader) if isinstance(loader, DataLoader) else 0
    if not hasattr(loop, 'dataloader_iterator') and length and \
            runner.iter % length:
        reasons.append(
            f'resuming at iteration {runner.iter}, inside an epoch of '
            f'{length} iterations: mmengine\'s {type(loop).__name__} '
            'restarts the epoch. Save checkpoints at epoch ends or use '
            'IterBasedTrainLoop.')
    if isinstance(loader, DataLoader) and loader.num_workers > 0:
        sampler = loader.sampler if loader.batch_sampler is None else \
            getattr(loader.batch_sampler, 'sampler', None)
        if not isinstance(sampler, SeededSampler):
            reasons.append(
                f'{loader.num_workers} data workers augment with generators '
                'that checkpoints do not hold. Seed each sample instead: '
                "train_dataloader.sampler=dict(type='SeededSampler', "
                'sampler=<the sampler>) (see mixmae_mm.datasets.seeded), or '
                'use num_workers=0.')
    saved = len(per_rank) if per_rank else 1
    randomness = runner.cfg.get('randomness', None) or {}
    if saved != runner.world_size and (
            saved > 1 or randomness.get('diff_rank_seed', False)):
        reasons.append(
            f'the checkpoint holds the generator states of {saved} rank(s) '
            f'and this run has {runner.world_size}: the ranks continue from '
            'the states of rank 0 (or of the rank with their number).')
    return reasons


class _RestoreBeforeFetch:
    """Wraps an IterBasedTrainLoop's data iterator: after ``skip`` batches
    (mmengine's replay of the batches trained before the checkpoint) it
    restores the saved states, then hands the loop its iterator back."""

    def __init__(self, loop, inner, skip: int, states: dict) -> None:
        self._loop, self._inner = loop, inner
        self._skip, self._states, self._count = skip, states, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._count == self._skip:
            set_rng_states(self._states)
            self._loop.dataloader_iterator = self._inner
        self._count += 1
        return next(self._inner)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``--resume`` continue the random streams of the killed run.

    mmengine 0.10.7 re-seeds on start and restores model, optimizer,
    schedulers, message hub and the data order on resume, but not the
    global generators. MixMAE draws its mixing mask with the global torch
    generator in the training process (:class:`MixMAEDataPreprocessor`),
    so a resumed run would train on other masks than an unbroken one. This
    hook:

    * stores the Python, numpy, torch (and CUDA) generator states in
      ``checkpoint['meta']['rng_states']`` whenever a checkpoint is saved;
    * on resume, restores them exactly at the point where the unbroken run
      continued: for a loop with ``dataloader_iterator``
      (``IterBasedTrainLoop``) right before the first new batch is fetched
      (after mmengine's replay of the already-trained batches); for other
      loops (``EpochBasedTrainLoop``) at the end of ``before_train``;
    * gives the training DataLoader a generator of its own (seeded from the
      run's seed) for the worker base seed that each new DataLoader
      iterator draws: from the global generator, a resumed run with
      persistent workers would draw one more number than the unbroken run
      (which reuses its iterator) and shift every later mask;
    * keeps validation from shifting the training streams (states saved in
      ``before_val`` and restored in ``after_val``), since a resumed run
      does not repeat the validation that followed the checkpoint.

    The data workers' generators are not saved: augmentation is exact on
    resume when each sample is seeded from (seed, epoch, index)
    (``SeededSampler``, as the shipped configs do) or runs in the training
    process (``num_workers=0``). Exactness holds for checkpoints at epoch
    ends with ``EpochBasedTrainLoop`` and for any iteration with
    ``IterBasedTrainLoop``. In distributed training each rank continues
    from its own states (:class:`AtomicCheckpointHook` gathers them into
    ``checkpoint['meta']['rng_states_per_rank']``, since only rank 0
    writes), so ``randomness.diff_rank_seed=True`` resumes exactly too, with
    the same number of ranks. Each case that is not exact is named in a
    warning at resume.

    Args:
        isolate_val (bool): Save/restore the states around validation.
            Defaults to True.
    """

    priority = 'LOWEST'

    def __init__(self, isolate_val: bool = True) -> None:
        self.isolate_val = isolate_val
        self._loaded: Optional[tuple] = None
        self._val_states: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the generator states in ``checkpoint['meta']``.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The checkpoint being saved.
        """
        checkpoint.setdefault('meta', {})[META_KEY] = get_rng_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the states of a loaded checkpoint (applied in
        :meth:`before_train` only if it turns out to be a resume).

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        meta = checkpoint.get('meta', {}) or {}
        self._loaded = (meta.get('iter'), meta.get(META_KEY),
                        meta.get(RANKS_KEY))

    def before_train(self, runner) -> None:
        """Give the DataLoader its own generator; on resume, schedule (or
        do) the restoration and warn where it cannot be exact.

        Args:
            runner (Runner): The runner.
        """
        loop = runner.train_loop
        loader = getattr(loop, 'dataloader', None)
        if isinstance(loader, DataLoader) and loader.generator is None:
            loader.generator = torch.Generator().manual_seed(runner.seed)
        loaded, self._loaded = self._loaded, None
        if loaded is None or runner.iter == 0 or loaded[0] != runner.iter:
            return  # a fresh run, or load_from (weights only)
        states = loaded[1]
        if states is None:
            runner.logger.warning(
                'The resumed checkpoint holds no random states (saved '
                'without RandomStateHook): the mixing masks and '
                'augmentations from now on differ from an unbroken run')
            return
        per_rank = loaded[2]
        for reason in _inexact_reasons(runner, loader, per_rank):
            runner.logger.warning(f'Resume is not exact: {reason}')
        if per_rank and get_rank() < len(per_rank):
            states = per_rank[get_rank()]
        if hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _RestoreBeforeFetch(
                loop, loop.dataloader_iterator, runner.iter, states)
        else:
            set_rng_states(states)

    def before_val(self, runner) -> None:
        """Save the training streams before validation.

        Args:
            runner (Runner): The runner.
        """
        if self.isolate_val:
            self._val_states = get_rng_states()

    def after_val(self, runner) -> None:
        """Restore the training streams after validation.

        Args:
            runner (Runner): The runner.
        """
        if self.isolate_val and self._val_states is not None:
            set_rng_states(self._val_states)
            self._val_states = None
