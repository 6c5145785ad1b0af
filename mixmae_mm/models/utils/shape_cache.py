# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""A cache of tensors that depend on input shapes only (position tables,
token layouts), bounded by the bytes it holds.

Detection and segmentation pad every batch to its own size, so a model sees
hundreds of shapes in a run; one table per shape kept forever grows without
bound (one Swin-B table for a 1333 x 800 image is 34 MB). The cache keeps
the most recently used entries up to a byte budget and recomputes the rest.
"""
import threading
from typing import Any, Hashable, Iterator, Optional

from torch import Tensor
# the class of FakeTensorMode's tensors (torch 2.1 to 2.15)
from torch._subclasses.fake_tensor import FakeTensor

from ...utils.torch_compat import is_compiling

#: Default budget of one cache: e.g. two of Swin-B's stage-1 position
#: tables for 512 x 512 crops (8 MiB each); larger ones (28 MiB for a
#: 1088 x 800 detection input) are rebuilt per call, which costs far less
#: than the forward that needs them (see docs/en/memory.md).
DEFAULT_MAX_BYTES = 16 * 2**20


def _tensors(value: Any) -> Iterator[Tensor]:
    """The tensors in ``value``: a tensor, or tuples, lists (NamedTuples
    included) and dict values of them."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Tensor):
            yield v
        elif isinstance(v, (tuple, list)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())


def tensor_nbytes(value: Any) -> int:
    """Bytes held alive by the tensors in ``value``: a tensor, or tuples,
    lists (NamedTuples included) and dict values of them; other leaves
    count 0.

    Whole storages count, not only the viewed elements (a view keeps its
    storage alive), and a storage shared by several tensors counts once.
    """
    seen = set()
    total = 0
    for t in _tensors(value):
        storage = t.untyped_storage()
        ident = (t.device, storage.data_ptr())
        if ident not in seen:
            seen.add(ident)
            total += storage.nbytes()
    return total


def _without_data(value: Any) -> bool:
    """Whether ``value`` holds a tensor with elements but no memory: a
    meta or fake tensor (``FakeTensorMode``), meaningless outside the
    code that made it."""
    return any(t.is_meta or isinstance(t, FakeTensor)
               for t in _tensors(value))


class ShapeCache:
    """Least-recently-used cache whose entries together hold at most
    ``max_bytes`` of tensor storage (:func:`tensor_nbytes`).

    An entry larger than the budget is not kept. Under ``torch.compile``
    the cache is neither read nor written: every value is computed in the
    graph, and only eager code changes the cache. (A compiled hit would
    make Dynamo guard on the dict's contents, so that an eager call filling
    or evicting an entry, e.g. a validation loop between compiled training
    steps, would recompile the graph.)

    Args:
        max_bytes (int): The budget; 0 disables caching.
        name (str): Shown in ``repr`` (which model part owns it).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES,
                 name: str = '') -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) \
                or max_bytes < 0:
            raise ValueError(f'max_bytes must be an int >= 0, got '
                             f'{max_bytes!r}')
        self.max_bytes = max_bytes
        self.name = name
        # key -> (value, bytes), oldest use first (a plain dict: Dynamo in
        # torch 2.1 cannot trace OrderedDict.get)
        self._entries = {}
        self._nbytes = 0
        # DataParallel replicas share one cache across threads
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached entries now."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.name!r}, {len(self)} entries, '
                f'{self._nbytes} of {self.max_bytes} bytes)')

    def get(self, key: Hashable) -> Optional[Any]:
        """The value cached for ``key``, or None (always None under
        ``torch.compile``)."""
        if is_compiling():
            return None  # computed in the graph (class docstring)
        with self._lock:  # most recent use moves last
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._entries[key] = entry
        return None if entry is None else entry[0]

    def put(self, key: Hashable, value: Any) -> Any:
        """Cache ``value`` for ``key`` unless it alone exceeds the budget,
        evicting the least recently used entries to make room.

        Not kept either: under ``torch.compile`` (the graph computes it) and
        meta or fake tensors.

        Returns:
            The value, for ``return cache.put(key, compute())``.
        """
        if is_compiling() or _without_data(value):
            return value
        size = tensor_nbytes(value)
        if size > self.max_bytes:
            return value
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= old[1]
            self._entries[key] = (value, size)
            self._nbytes += size
            while self._nbytes > self.max_bytes:
                _, evicted = self._entries.pop(next(iter(self._entries)))
                self._nbytes -= evicted
        return value

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    # a module holding a cache may be deep-copied (EMA) or pickled: the
    # copy starts empty and gets a lock of its own
    def __getstate__(self) -> dict:
        return dict(max_bytes=self.max_bytes, name=self.name)

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


__all__ = ['ShapeCache', 'tensor_nbytes', 'DEFAULT_MAX_BYTES']
