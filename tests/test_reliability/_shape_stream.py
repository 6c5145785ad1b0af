"""Probe for test_shape_streams.py, run as a fresh process so that no other
test's allocations move its resident memory: feeds a stream of distinct
input sizes through a dense encoder (batch 1, no gradients) and prints one
JSON line with the resident memory after warm-up and at its peak after.

Resident memory is read after ``malloc_trim(0)``: glibc keeps freed heap
pages of the varying activations mapped (measured: +250 MB over 200 sizes
without a single live byte more), which is the allocator's reserve, not
state the model keeps. ``raw_growth_mb`` is the growth without trimming.

Usage: ``python _shape_stream.py CFG_JSON NUM_SHAPES [--unbounded]``, where
CFG_JSON is the encoder's config. ``--unbounded`` lifts every shape cache's
budget: the control that shows the measurement sees unbounded caches.
"""
import ctypes
import json
import os
import random
import sys

import torch

PAGE = os.sysconf('SC_PAGE_SIZE')
#: mmdet pads each batch to multiples of 32: sizes 64..544 in both sides
#: (256 pairs; small enough for 2 cores)
SIDES = range(64, 545, 32)
#: warm-up: the largest input first, so that the allocator's high-water
#: mark for activations is reached before the baseline is read
WARMUP = [(544, 544), (64, 64), (544, 64), (64, 544)]


try:
    _LIBC = ctypes.CDLL('libc.so.6')
except OSError:  # not glibc: nothing to trim
    _LIBC = None


def rss_bytes(trim: bool = True) -> int:
    """Resident set size of this process (second field of statm, pages),
    after glibc returned its free heap pages when ``trim``."""
    if trim and _LIBC is not None and hasattr(_LIBC, 'malloc_trim'):
        _LIBC.malloc_trim(0)
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * PAGE


def shape_caches(model):
    """Every shape cache the model's forward may fill."""
    from mixmae_mm.models.layers import token_layout
    from mixmae_mm.models.utils.shape_cache import ShapeCache
    caches = [m for mod in model.modules() for m in vars(mod).values()
              if isinstance(m, ShapeCache)]
    return caches + [token_layout._PLAIN_LAYOUTS]


def main(cfg: dict, num_shapes: int, unbounded: bool) -> dict:
    torch.set_num_threads(1)
    import mixmae_mm  # noqa: F401  (registers the encoders)
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg).eval()
    caches = shape_caches(model)
    if unbounded:
        for cache in caches:
            cache.max_bytes = 2**62
    stream = [(h, w) for h in SIDES for w in SIDES
              if (h, w) not in WARMUP]
    random.Random(0).shuffle(stream)
    stream = stream[:num_shapes]
    assert len(stream) == num_shapes, 'not enough distinct sizes'
    peak = raw_peak = 0
    with torch.no_grad():
        for h, w in WARMUP:
            model(torch.randn(1, 3, h, w))
        raw_base, base = rss_bytes(trim=False), rss_bytes()
        for h, w in stream:
            model(torch.randn(1, 3, h, w))
            raw_peak = max(raw_peak, rss_bytes(trim=False))
            peak = max(peak, rss_bytes())
    return dict(
        shapes=len(set(stream)),
        base_mb=base / 2**20,
        growth_mb=(peak - base) / 2**20,
        raw_growth_mb=(raw_peak - raw_base) / 2**20,
        cache_bytes=[c.nbytes for c in caches],
        cache_budgets=[c.max_bytes for c in caches])


if __name__ == '__main__':
    out = main(json.loads(sys.argv[1]), int(sys.argv[2]),
               '--unbounded' in sys.argv[3:])
    print(json.dumps(out))
