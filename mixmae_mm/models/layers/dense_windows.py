# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Dense windows: the static-shape layout of a stage, and when it is used.

The map is zero-padded to whole windows and cut into them; every window
keeps all its ``N = Wh*Ww`` slots and attention inside it is limited by a
bool mask, True where two tokens lie in the same image group (the mix
mask resampled to the stage grid) and padding a group of its own. This is
the textbook masked window attention of ``tests/reference/padded_window.py``
(and of timm's / mmpretrain's WindowAttention): every shape depends on the
image size and batch only, never on the mask values, and nothing is read
into Python, so ``torch.compile`` traces one graph for all masks and CUDA
graphs can replay it.

It costs more than the cells of :mod:`.token_layout` (all N x N logits of
every window, padding included, and a mask per block) but needs no host
planning. Which of the two runs is decided per forward by
:func:`use_static_shapes`, not by the user. On the static path a stage
whose one window covers the map takes the cells after all where the
caller states the partner count, as their sizes then follow from it
(``MixMAESwin.dense_layouts``).
"""
import contextlib
from typing import Iterator, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...utils.torch_compat import is_compiling, known_true
from .rel_pos import relative_position_index

#: Group id of padding slots: real tokens never attend to them.
PAD_GROUP = 2

#: Set by :func:`force_attention_path` (tests, benchmarks); None: automatic.
_forced: Optional[bool] = None


def use_static_shapes(x: Tensor) -> bool:
    """Whether a forward on ``x`` takes dense windows (static shapes) or
    the host-planned cells.

    Compiled: static, as the compiler needs shapes independent of the mask.
    On an accelerator (CUDA, or a fake CUDA tensor): static, as the cells
    cost a kernel launch per segment per block and a host plan per batch.
    Eager on the CPU: cells, the fewest FLOPs (about half the logits at a
    0.5 mix ratio, no padding, no mask arithmetic).
    """
    if _forced is not None:
        return _forced
    return is_compiling() or x.device.type != 'cpu'


@contextlib.contextmanager
def force_attention_path(path: str) -> Iterator[None]:
    """Run one path whatever :func:`use_static_shapes` would choose: for
    tests that hold both paths to the same oracles, and for benchmarks.

    Args:
        path (str): ``'static'`` (dense windows) or ``'cells'``.
    """
    global _forced
    if path not in ('static', 'cells'):
        raise ValueError(f"path must be 'static' or 'cells', got {path!r}")
    saved, _forced = _forced, path == 'static'
    try:
        yield
    finally:
        _forced = saved


class DenseWindows(NamedTuple):
    """A stage's map as whole windows, padding included.

    Attributes:
        hw (tuple[int, int]): The map size (H, W).
        window (tuple[int, int]): The window ``(Wh, Ww)``, at most the map.
        rel_index (Tensor): Long (N, N), index of every token pair into the
            relative position bias table.
        allowed (Tensor | None): Bool (M, nW, N, N), True = may attend;
            every row allows its diagonal. None when all pairs may attend
            (no groups, no padding).
        num_windows (int): nW, the windows of the padded map (a field, not
            a property: torch 2.1's Dynamo breaks the graph on a
            NamedTuple's property).
    """
    hw: Tuple[int, int]
    window: Tuple[int, int]
    rel_index: Tensor
    allowed: Optional[Tensor]
    num_windows: int

    def to_tokens(self, x: Tensor) -> Tensor:
        """Map (B, H, W, C) -> window tokens (B, nW*N, C), zero-padded."""
        return window_partition(_pad(x, self.window),
                                self.window).flatten(1, 2)

    def to_map(self, x: Tensor) -> Tensor:
        """Window tokens (B, nW*N, C) -> map (B, H, W, C), padding cut."""
        (h, w), (wh, ww) = self.hw, self.window
        hp, wp = padded_size(self.hw, self.window)
        x = x.unflatten(1, (-1, wh * ww))  # (B, nW, N, C)
        x = window_reverse(x, self.window, (hp, wp))  # (B, Hp, Wp, C)
        # a copy whether padding was cut or not: one memory layout for all
        # sizes (under dynamic shapes a view's layout would be guarded on)
        return x.narrow(1, 0, h).narrow(2, 0, w).clone(
            memory_format=torch.contiguous_format)


def padded_size(hw: Tuple[int, int], unit) -> Tuple[int, int]:
    """(H, W) rounded up to multiples of ``unit`` (an int or a per-side
    pair), written as counts of units: under dynamic shapes every padded
    size stays a multiple of one symbol (``(-h) % unit`` nests a ``Mod``
    per stage, and the compiler's simplification takes minutes)."""
    uh, uw = (unit, unit) if isinstance(unit, int) else unit
    return -(-hw[0] // uh) * uh, -(-hw[1] // uw) * uw


def _pad(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """Zero-pad (B, H, W, C) at the bottom/right to window multiples."""
    (h, w), (hp, wp) = x.shape[1:3], padded_size(x.shape[1:3], window)
    return F.pad(x, (0, 0, 0, wp - w, 0, hp - h))


def window_partition(x: Tensor, window: Tuple[int, int]) -> Tensor:
    """(B, Hp, Wp, C) -> windows (B, nW, N, C), row-major."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c)
    # nW written out: inferring it from -1 made Dynamo guard on its value
    return x.transpose(2, 3).reshape(b, (h // wh) * (w // ww), wh * ww, c)


def window_reverse(x: Tensor, window: Tuple[int, int],
                   hw: Tuple[int, int]) -> Tensor:
    """Windows (B, nW, N, C) -> padded map (B, Hp, Wp, C)."""
    b, _, _, c = x.shape
    (wh, ww), (h, w) = window, hw
    x = x.view(b, h // wh, w // ww, wh, ww, c)
    return x.transpose(2, 3).reshape(b, h, w, c)


def dense_windows(hw: Tuple[int, int],
                  window: Tuple[int, int],
                  table_window: Tuple[int, int],
                  groups: Optional[Tensor] = None,
                  device=None) -> DenseWindows:
    """The dense-window layout of a stage, built on the device with tensor
    operations only (nothing is read back).

    Args:
        hw (tuple[int, int]): Map size (H, W).
        window (tuple[int, int]): Window ``(Wh, Ww)``, at most ``hw``.
        table_window (tuple[int, int]): Window of the bias table.
        groups (Tensor, optional): Image groups (M, H, W), M in {1, B},
            values 0 or 1 (bool works): tokens attend only within theirs.
        device (torch.device | str, optional): Where to build it; defaults
            to the device of ``groups`` (CPU without groups).

    Returns:
        DenseWindows: The layout; ``allowed`` is None without groups and
        padding.
    """
    h, w = hw
    device = groups.device if groups is not None and device is None \
        else device
    # maps that need no padding keep the 4-D bias SDPA's fused kernels
    # take (classification); under dynamic shapes the padding mask is
    # always built (a branch on the size would make a graph per class)
    padded = not (known_true(h % window[0] == 0)
                  and known_true(w % window[1] == 0))
    allowed = None
    if groups is not None or padded:
        if groups is None:
            groups = torch.zeros((1, h, w), dtype=torch.long, device=device)
        # padding: a group of its own, so no real token attends to it and
        # no padding row is empty (softmax stays finite)
        g = _pad(groups.long()[..., None] - PAD_GROUP, window) + PAD_GROUP
        g = window_partition(g, window)[..., 0]  # (M, nW, N)
        allowed = g[..., :, None] == g[..., None, :]  # (M, nW, N, N)
    rel_index = relative_position_index(window, table_window, device)
    num_windows = -(-h // window[0]) * -(-w // window[1])
    return DenseWindows((h, w), tuple(window), rel_index, allowed,
                        num_windows)


__all__ = [
    'DenseWindows', 'dense_windows', 'padded_size', 'use_static_shapes',
    'force_attention_path'
]
