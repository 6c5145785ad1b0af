"""ShapeCache: least-recently-used eviction by bytes, the byte count of
nested values, copies that start empty, and compiled code that bypasses
the cache (one graph, whatever eager code does to the cache)."""
import copy
import pickle
import threading
from typing import NamedTuple, Optional

import pytest
import torch

from mixmae_mm.models.utils.shape_cache import ShapeCache, tensor_nbytes


def _t(numel: int) -> torch.Tensor:
    """A float32 tensor of ``4 * numel`` bytes."""
    return torch.zeros(numel)


class _Pair(NamedTuple):
    a: torch.Tensor
    b: Optional[torch.Tensor]
    hw: tuple


def test_tensor_nbytes_counts_whole_storages_once():
    base = torch.zeros(10, 4)  # 160 bytes
    assert tensor_nbytes(base) == 160
    # a view keeps all of its storage alive
    assert tensor_nbytes(base[:1]) == 160
    # shared storage once; None, ints and tuples of ints count nothing
    assert tensor_nbytes(_Pair(base, base.view(-1), (3, 4))) == 160
    assert tensor_nbytes(_Pair(base, None, (3, 4))) == 160
    nested = (_Pair(_t(5), torch.zeros(3, dtype=torch.int64), (1, )),
              [_t(2)], {'k': torch.zeros(2, dtype=torch.bool)})
    assert tensor_nbytes(nested) == 20 + 24 + 8 + 2
    assert tensor_nbytes(7) == 0


def test_least_recently_used_entry_goes_first():
    cache = ShapeCache(max_bytes=1200)
    for key in 'abc':
        cache.put(key, _t(100))  # 400 bytes each: exactly full
    assert cache.nbytes == 1200 and len(cache) == 3
    assert cache.get('a') is not None  # 'b' is now the oldest use
    cache.put('d', _t(100))
    assert 'b' not in cache
    assert all(k in cache for k in 'acd')
    assert cache.nbytes == 1200
    # one large entry evicts as many as needed
    cache.put('e', _t(200))  # 800 bytes: 'a' and 'c' make room
    assert [k for k in 'acde' if k in cache] == ['d', 'e']
    assert cache.nbytes == 400 + 800


def test_hit_returns_the_stored_object_and_miss_none():
    cache = ShapeCache(max_bytes=1000)
    value = _t(10)
    assert cache.put('k', value) is value
    assert cache.get('k') is value
    assert cache.get('other') is None


def test_replacing_a_key_keeps_the_byte_count():
    cache = ShapeCache(max_bytes=1000)
    cache.put('k', _t(100))
    cache.put('k', _t(50))
    assert len(cache) == 1 and cache.nbytes == 200


def test_entry_over_budget_is_returned_not_kept():
    cache = ShapeCache(max_bytes=100)
    cache.put('small', _t(10))
    big = _t(26)  # 104 bytes
    assert cache.put('big', big) is big
    assert 'big' not in cache
    assert 'small' in cache and cache.nbytes == 40
    off = ShapeCache(max_bytes=0)
    off.put('k', _t(1))
    assert len(off) == 0 and off.nbytes == 0


def test_tensors_without_memory_are_not_kept():
    """Meta and fake tensors (FakeTensorMode, the fake-CUDA step test) are
    meaningless outside the code that made them."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    cache = ShapeCache(max_bytes=1000)
    meta = torch.zeros(4, device='meta')
    assert cache.put('meta', meta) is meta
    with FakeTensorMode():
        fake = torch.zeros(4)
        assert cache.put('fake', (fake, None)) is not None
    assert len(cache) == 0
    cache.put('empty', torch.zeros(0))  # real, just empty: kept
    assert 'empty' in cache


@pytest.mark.parametrize('bad', [-1, 1.5, '32', True, None])
def test_bad_budget_is_refused(bad):
    with pytest.raises(ValueError, match='max_bytes must be an int >= 0'):
        ShapeCache(max_bytes=bad)


def test_copies_start_empty_with_the_same_budget():
    cache = ShapeCache(max_bytes=1000, name='enc.pos')
    cache.put('k', _t(10))
    for clone in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert len(clone) == 0 and clone.nbytes == 0
        assert clone.max_bytes == 1000 and clone.name == 'enc.pos'
        clone.put('j', _t(10))  # a lock of its own, usable
        assert 'j' not in cache
    assert 'k' in cache


def test_concurrent_use_keeps_the_count_exact():
    """DataParallel replicas share a module's cache across threads."""
    cache = ShapeCache(max_bytes=4000)
    errors = []

    def work(seed):
        gen = torch.Generator().manual_seed(seed)
        try:
            for _ in range(400):
                key = int(torch.randint(0, 30, (1, ), generator=gen))
                if cache.get(key) is None:
                    cache.put(key, _t(50 * (1 + key % 4)))
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s, )) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    held = sum(tensor_nbytes(cache.get(k)) for k in range(30) if k in cache)
    assert cache.nbytes == held <= 4000


def test_compiled_code_bypasses_the_cache_and_never_recompiles_for_it():
    """Under ``torch.compile`` the value is computed in the graph, the cache
    is left as it is, and eager changes to the cache afterwards (a fill, an
    eviction, a clear) do not recompile: the graph holds no guard on the
    cache's contents. (With a compiled hit, Dynamo guarded on the key's
    presence: the benchmark recompiled the MixMAE loss after an eager step
    had filled the decoder's position cache.)"""
    cache = ShapeCache(max_bytes=1000)
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def add_table(x):
        key = (tuple(x.shape), x.device, x.dtype)
        table = cache.get(key)
        if table is None:
            table = cache.put(key, torch.ones_like(x))
        return x + table

    x = torch.randn(2, 3)
    key = (tuple(x.shape), x.device, x.dtype)
    # a sentinel that eager code would read: the compiled code must not
    cache.put(key, torch.full((2, 3), 2.))
    cache.put('later', _t(1))  # the most recent use
    assert torch.equal(add_table(x), x + 2)  # eager: the cached value
    cache.get('later')
    compiled = torch.compile(
        add_table, backend=counting_backend, fullgraph=True, dynamic=False)
    assert torch.equal(compiled(x), x + 1)  # computed in the graph
    assert list(cache._entries) == [key, 'later']  # LRU order untouched
    assert len(graphs) == 1
    # eager code changes the cache: the compiled code is not recompiled
    for change in (lambda: cache.put('new', _t(200)),  # evicts the key
                   lambda: cache.put(key, torch.full((2, 3), 3.)),
                   cache.clear):
        change()
        assert torch.equal(compiled(x), x + 1)
    assert len(graphs) == 1
    assert len(cache) == 0
