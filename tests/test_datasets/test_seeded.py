"""Per-sample seeded augmentation (mixmae_mm/datasets/seeded.py): a sample's
random transforms depend on (seed, epoch, index) only, not on workers,
their persistence, ranks, or the caller's generator states."""
import pickle
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, DefaultSampler, InfiniteSampler
from torch.utils.data import DataLoader

from mixmae_mm.datasets import (SampleKey, SeededDataset, SeededSampler,
                                seeded_rngs)


class RandomPipelineData(BaseDataset):
    """Item i: its index and one draw from each global generator (Python,
    numpy, torch), as mmcv/mmpretrain transforms draw."""

    def __init__(self, n=10):
        self.n = n
        super().__init__(serialize_data=False, lazy_init=True)

    def load_data_list(self):
        return [dict(i=i, width=64 + 32 * (i % 2), height=64)
                for i in range(self.n)]

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        return (int(idx), random.random(), float(np.random.rand()),
                float(torch.rand(())))


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_sample_key_is_an_index_that_pickles_its_seed():
    key = SampleKey(3, seed=11, epoch=2)
    assert key == 3 and [10, 20, 30, 40][key] == 40
    back = pickle.loads(pickle.dumps(key))
    assert type(back) is SampleKey
    assert (int(back), back.seed, back.epoch) == (3, 11, 2)


def test_seeded_rngs_depend_on_the_key_and_restore_the_callers_state():
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    plain = [draws() for _ in range(2)]
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    inside = {}
    for seed, epoch, index in [(1, 0, 0), (1, 0, 0), (2, 0, 0), (1, 1, 0),
                               (1, 0, 1)]:
        with seeded_rngs(SampleKey(index, seed, epoch)):
            inside.setdefault((seed, epoch, index), []).append(draws())
        after = draws()
        # the block left the caller's streams where they were
        assert after == plain[0]
        random.seed(0), np.random.seed(0), torch.manual_seed(0)
    runs = inside.pop((1, 0, 0))
    assert runs[0] == runs[1]  # same key, same draws
    values = [runs[0]] + [v[0] for v in inside.values()]
    # any change of seed, epoch or index gives other draws, in each stream
    for stream in range(3):
        assert len({v[stream] for v in values}) == len(values)


def _epochs(loader, epochs):
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        out.append(sorted(x for batch in loader for x in zip(*batch)))
    return out


@pytest.mark.parametrize('workers,persistent', [(1, False), (2, True)])
def test_augmentation_does_not_depend_on_workers(workers, persistent):
    data = SeededDataset(RandomPipelineData())

    def loader(num_workers, persistent_workers=False):
        sampler = SeededSampler(
            data, dict(type='DefaultSampler', shuffle=True), seed=5)
        return DataLoader(data, batch_size=3, sampler=sampler,
                          num_workers=num_workers,
                          persistent_workers=persistent_workers)

    reference = _epochs(loader(0), 3)
    assert _epochs(loader(workers, persistent), 3) == reference
    # every epoch draws anew for every sample
    for a, b in zip(reference, reference[1:]):
        assert all(x[1:] != y[1:] for x, y in zip(a, b))
    # and resuming at epoch 2 gives epoch 2 of the unbroken run
    fresh = loader(workers, persistent)
    fresh.sampler.set_epoch(2)
    assert sorted(x for batch in fresh for x in zip(*batch)) == reference[2]


def test_key_epochs_follow_the_global_stream_of_passes(monkeypatch):
    data = SeededDataset(RandomPipelineData(n=6))
    inf = SeededSampler(data, dict(type='InfiniteSampler', shuffle=True),
                        seed=1)
    keys = [k for k, _ in zip(inf, range(15))]
    assert [k.epoch for k in keys] == [0] * 6 + [1] * 6 + [2] * 3
    assert sorted(map(int, keys[6:12])) == list(range(6))
    assert all(k.seed == 1 for k in keys)
    one = SeededSampler(data, dict(type='DefaultSampler', shuffle=True),
                        seed=1)
    one.set_epoch(3)
    single = {(int(k), k.epoch) for k in one}
    # two ranks see the same (index, epoch) pairs between them
    ranks = set()
    for rank in (0, 1):
        for module in ('mixmae_mm.datasets.seeded',
                       'mmengine.dataset.sampler'):
            monkeypatch.setattr(f'{module}.get_dist_info',
                                lambda r=rank: (r, 2))
        sampler = SeededSampler(
            data, dict(type='DefaultSampler', shuffle=True), seed=1)
        sampler.set_epoch(3)
        ranks |= {(int(k), k.epoch) for k in sampler}
    assert ranks == single == {(i, 3) for i in range(6)}


def test_inner_sampler_and_seed_come_from_the_config():
    data = SeededDataset(RandomPipelineData())
    sampler = SeededSampler(data, dict(type='DefaultSampler', shuffle=False),
                            seed=9)
    assert isinstance(sampler.sampler, DefaultSampler)
    assert list(map(int, sampler)) == list(range(10)) and len(sampler) == 10
    unseeded = SeededSampler(data, InfiniteSampler(data, seed=4))
    assert unseeded.seed == 4  # the inner sampler's seed


def test_clear_errors_for_a_missing_half():
    with pytest.raises(TypeError, match="type='SeededDataset'"):
        SeededSampler(RandomPipelineData())
    with pytest.raises(TypeError, match="type='SeededSampler'"):
        SeededDataset(RandomPipelineData())[3]


def test_wrapper_passes_annotations_to_batch_samplers():
    mmdet_samplers = pytest.importorskip('mmdet.datasets.samplers')
    inner = RandomPipelineData()
    data = SeededDataset(inner)
    assert data.metainfo == inner.metainfo and len(data) == 10
    sampler = SeededSampler(data, dict(type='DefaultSampler', shuffle=True),
                            seed=0)
    # mmdet groups by aspect ratio through sampler.dataset.get_data_info
    batches = list(mmdet_samplers.AspectRatioBatchSampler(sampler, 2))
    assert all(isinstance(k, SampleKey) for b in batches for k in b)
    # 5 wide, 5 tall items: 4 grouped batches, then the two left-overs
    groups = sorted(len({int(k) % 2 for k in b}) for b in batches)
    assert groups == [1] * 4 + [2]
    assert sorted(int(k) for b in batches for k in b) == list(range(10))
