# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Augmentation as a function of (seed, epoch, sample index).

torch's DataLoader workers draw augmentations from generators seeded once
per worker (mmengine's ``worker_init_fn``: config seed + worker id), so what
a sample gets depends on which worker loads it, on how many workers there
are, and, with ``persistent_workers=True``, on everything the worker drew in
earlier epochs; none of that is in a checkpoint, so a resumed run augments
differently from an unbroken one. Here the sampler hands each index over
with its seed and epoch (:class:`SampleKey`), and the dataset seeds the
global generators of Python, numpy and torch from them for the duration of
that one sample (:func:`seeded_rngs`), in whichever process loads it.

Config: mixmae_mm's datasets (``CheckedImageNet``, ``CheckedCustomDataset``)
take the keys as they are; other datasets get the :class:`SeededDataset`
wrapper::

    train_dataloader = dict(
        sampler=dict(type='SeededSampler',
                     sampler=dict(type='DefaultSampler', shuffle=True)),
        dataset=dict(type='CheckedImageNet', ...))
        # or dataset=dict(type='SeededDataset', dataset=dict(type=...))
"""
import contextlib
import random
from typing import Any, Iterator, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS, DATASETS
from torch.utils.data import Sampler


class SampleKey(int):
    """A dataset index carrying the seed and epoch of its augmentation.

    An ``int``, so that batch samplers reading
    ``sampler.dataset.get_data_info(idx)`` (mmdet's
    ``AspectRatioBatchSampler``) and the DataLoader's index queue to
    worker processes handle it as an index.
    """

    def __new__(cls, index: int, seed: int, epoch: int) -> 'SampleKey':
        key = super().__new__(cls, index)
        key.seed, key.epoch = int(seed), int(epoch)
        return key

    def __reduce__(self):
        # pickled to worker processes with its seed and epoch
        return SampleKey, (int(self), self.seed, self.epoch)

    def __repr__(self) -> str:
        return (f'SampleKey(index={int(self)}, seed={self.seed}, '
                f'epoch={self.epoch})')


@contextlib.contextmanager
def seeded_rngs(key: SampleKey) -> Iterator[None]:
    """Seed Python's, numpy's and torch's CPU generator from a key for the
    block, then give the caller its generator states back.

    ``SeedSequence`` mixes (seed, epoch, index) into independent streams.
    Restoring matters with ``num_workers=0``, where the pipeline runs in the
    training process between mix-mask draws. torch's CUDA generators are
    left alone (``torch.manual_seed`` would also reseed the model's CUDA
    dropout).

    Args:
        key (SampleKey): The sample's key.
    """
    states = (random.getstate(), np.random.get_state(),
              torch.default_generator.get_state())
    entropy = [key.seed % 2**64, key.epoch, int(key)]
    words = np.random.SeedSequence(entropy).generate_state(6, np.uint32)
    random.seed(int(words[0]) << 32 | int(words[1]))
    np.random.seed(words[2:4])
    torch.default_generator.manual_seed(int(words[4]) << 32 | int(words[5]))
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.default_generator.set_state(states[2])


class SeededSamplesMixin:
    """For dataset classes: a :class:`SampleKey` index loads its sample
    with :func:`seeded_rngs`; a plain index (validation) as before.

    Covers transforms that draw from the global generators of Python,
    numpy and torch, as mmcv's, mmpretrain's, mmdet's and mmseg's do; a
    transform holding a generator object of its own is not covered.
    """

    def __getitem__(self, idx: int) -> Any:
        if not isinstance(idx, SampleKey):
            return super().__getitem__(idx)
        with seeded_rngs(idx):
            return super().__getitem__(int(idx))


@DATASETS.register_module()
class SeededDataset(SeededSamplesMixin):
    """Wraps a dataset whose class does not use
    :class:`SeededSamplesMixin` (e.g. mmdet's ``CocoDataset``), for a
    :class:`SeededSampler`.

    Args:
        dataset (dict | BaseDataset): The wrapped dataset or its config.
    """

    def __init__(self, dataset: Union[dict, BaseDataset]) -> None:
        self.dataset = DATASETS.build(dataset) \
            if isinstance(dataset, dict) else dataset

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's meta information (saved in checkpoints;
        the same as without the wrapper)."""
        return self.dataset.metainfo

    def full_init(self) -> None:
        """Fully initialise the wrapped dataset."""
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's annotation of ``idx`` (no pipeline)."""
        return self.dataset.get_data_info(int(idx))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> Any:
        if not isinstance(key, SampleKey):
            raise TypeError(
                f'SeededDataset got the index {key!r} ({type(key).__name__}) '
                'instead of a SampleKey: its sampler must be a SeededSampler, '
                "e.g. train_dataloader.sampler=dict(type='SeededSampler', "
                "sampler=dict(type='DefaultSampler', shuffle=True))")
        with seeded_rngs(key):
            return self.dataset[int(key)]


@DATA_SAMPLERS.register_module()
class SeededSampler(Sampler):
    """Wraps a sampler and yields its indices as :class:`SampleKey` (seed,
    epoch of the sample, index), for a dataset that seeds each sample from
    them (:class:`SeededSamplesMixin`, :class:`SeededDataset`).

    The epoch of a sample is its pass over the dataset: mmengine's samplers
    give rank ``r`` of ``W`` the items ``r, r + W, r + 2W, ...`` of one
    global stream of passes (``DefaultSampler`` one pass per
    ``set_epoch``, ``InfiniteSampler`` endless passes), so item ``k`` of
    this rank is pass ``epoch + (r + k * W) // len(dataset)``. Hence a
    sample's augmentation depends on (seed, pass, index) only: not on the
    number of workers, their persistence, where a run was resumed or the
    number of ranks.

    Args:
        dataset (SeededSamplesMixin): The dataset (a class with
            :class:`SeededSamplesMixin` or a :class:`SeededDataset`).
        sampler (dict | Sampler): The sampler whose order is kept. Defaults
            to ``dict(type='DefaultSampler', shuffle=True)``.
        seed (int, optional): Seed of the augmentation and of the inner
            sampler's order (given by the Runner: the config's
            ``randomness.seed``). ``None``: the inner sampler's seed, as
            mmengine's samplers draw one with ``sync_random_seed``.
    """

    def __init__(self,
                 dataset: SeededDataset,
                 sampler: Union[dict, Sampler] = dict(
                     type='DefaultSampler', shuffle=True),
                 seed: Union[int, None] = None) -> None:
        if not isinstance(dataset, SeededSamplesMixin):
            raise TypeError(
                f'SeededSampler needs a dataset that seeds each sample from '
                f'its SampleKey; {type(dataset).__name__} does not: wrap '
                "its config as dataset=dict(type='SeededDataset', "
                'dataset=dict(...)) or use a class with SeededSamplesMixin')
        self.dataset = dataset
        self.sampler = DATA_SAMPLERS.build(
            sampler, default_args=dict(dataset=dataset, seed=seed)) \
            if isinstance(sampler, dict) else sampler
        if seed is None:
            seed = getattr(self.sampler, 'seed', None)
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.rank, self.world_size = get_dist_info()
        self.epoch = 0

    def __iter__(self):
        size, epoch = len(self.dataset), self.epoch
        for k, index in enumerate(self.sampler):
            position = self.rank + k * self.world_size
            yield SampleKey(index, self.seed, epoch + position // size)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch here and in the inner sampler.

        Args:
            epoch (int): The epoch mmengine's loop is about to run.
        """
        self.epoch = epoch
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)
