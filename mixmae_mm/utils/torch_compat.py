# Copyright (c) OpenMMLab. All rights reserved.
"""The one place for torch calls whose API differs between the supported
torch releases (2.1 to 2.15, see the README's support matrix).

Each helper names the release that introduced the API it guards, so that it
can go once the oldest supported torch has it. Callers never test versions.
"""
import functools

import torch


def is_autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ('cpu', 'cuda', ...).

    ``torch.is_autocast_enabled(device_type)`` exists since torch 2.4; before
    it, the argument-free form answers for CUDA only.
    """
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        if device_type == 'cpu':
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def autocast_dtype(device_type: str) -> torch.dtype:
    """The autocast dtype of ``device_type`` (``torch.get_autocast_dtype``,
    torch >= 2.4; the per-device getters before)."""
    if hasattr(torch, 'get_autocast_dtype'):
        return torch.get_autocast_dtype(device_type)
    if device_type == 'cpu':  # torch < 2.4
        return torch.get_autocast_cpu_dtype()
    return torch.get_autocast_gpu_dtype()


if hasattr(torch.amp, 'custom_fwd'):  # torch >= 2.4
    #: Decorators that run a custom autograd function's backward under the
    #: CUDA autocast state of its forward (no input casts).
    custom_fwd = functools.partial(torch.amp.custom_fwd, device_type='cuda')
    custom_bwd = functools.partial(torch.amp.custom_bwd, device_type='cuda')
else:  # torch < 2.4: the same decorators, CUDA-only by construction
    custom_fwd = torch.cuda.amp.custom_fwd
    custom_bwd = torch.cuda.amp.custom_bwd


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


__all__ = [
    'autocast_dtype', 'custom_bwd', 'custom_fwd', 'flop_counter_mode',
    'is_autocast_enabled'
]
