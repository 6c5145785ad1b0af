# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""The one place for torch calls whose API differs between the supported
torch releases (2.1 to 2.15, see the README's support matrix).

Each helper names the release that introduced the API it guards, so that it
can go once the oldest supported torch has it. Callers never test versions.
"""
import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Pause ``torch.jit.trace`` (and the TorchScript ONNX exporter built on
    it): tensors made inside are constants of the trace, not ops of it.

    For shape-only tables (token layouts, position embeddings) that the
    model caches: planned outside, the graph holds only the model's math
    (ONNX has no ``bincount``), and a cold and a warm cache trace alike.
    torch has no public API for this; the private pair below exists, with
    the same meaning, from torch 2.1 to 2.15.
    """
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the caller (constant True in
    the traced graph, False in eager code).

    ``torch.compiler.is_compiling`` is public from torch 2.3; torch 2.1 has
    the same function as ``torch._dynamo.is_compiling``.
    """
    return _is_compiling()


def _find_is_compiling():
    compiler = getattr(torch, 'compiler', None)
    if hasattr(compiler, 'is_compiling'):
        return compiler.is_compiling
    from torch import _dynamo  # torch 2.1: not imported by ``import torch``
    return _dynamo.is_compiling


#: resolved once: Dynamo traces the call, not the look-up
_is_compiling = _find_is_compiling()


def known_true(cond) -> bool:
    """Whether ``cond`` holds for every input size the code serves, without
    making the compiler guard on it.

    Eager and in graphs of one size ``cond`` is a plain bool: its value.
    Under dynamic shapes it is a symbolic bool over the sizes: True only
    where provable for all of them (``statically_known_true``), else
    False, with no guard, so no graph per class of sizes. torch 2.1 lacks
    ``torch.fx.experimental.symbolic_shapes.statically_known_true`` (2.14
    has it): ``bool(cond)`` there (a guard where symbolic; its dynamic
    shapes are not used, see docs/en/compile.md).
    """
    return _statically_known_true(cond)


def _find_statically_known_true():
    from torch.fx.experimental import symbolic_shapes
    return getattr(symbolic_shapes, 'statically_known_true', bool)


_statically_known_true = _find_statically_known_true()


def flop_counter_mode():
    """``torch.utils.flop_counter.FlopCounterMode(display=False)`` that
    also counts SDPA's fused CPU kernel.

    Newer torch (2.14 here) runs that kernel as an op of its own,
    ``_scaled_dot_product_flash_attention_for_cpu``, which the counter's
    registry (``flop_registry``) lacks: it is counted with the formulas of
    the CUDA flash op. torch 2.1 has neither that op nor ``flop_registry``
    (its table is ``flop_mapping``), and nothing is added.
    """
    from torch.utils import flop_counter
    aten = torch.ops.aten
    custom = {}
    registry = getattr(flop_counter, 'flop_registry', None)
    if registry is not None and hasattr(
            aten, '_scaled_dot_product_flash_attention_for_cpu'):

        def same_as(op):

            def formula(*args, **kwargs):  # takes tensors, as registered
                return registry[op](*args, **kwargs)

            formula._get_raw = True
            return formula

        custom = {
            aten._scaled_dot_product_flash_attention_for_cpu:
            same_as(aten._scaled_dot_product_flash_attention),
            aten._scaled_dot_product_flash_attention_for_cpu_backward:
            same_as(aten._scaled_dot_product_flash_attention_backward),
        }
    return flop_counter.FlopCounterMode(display=False, custom_mapping=custom)


__all__ = ['flop_counter_mode', 'is_compiling', 'known_true', 'untraced']
