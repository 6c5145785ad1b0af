# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Hooks registered in mmengine's root ``HOOKS`` (visible from the
mmpretrain, mmdet and mmseg scopes alike)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, atomic_write_text
from .nonfinite_loss_hook import NonFiniteLossHook
from .reconstruction_hook import MixMAEReconstructionHook
from .random_state_hook import (RandomStateHook, get_rng_states,
                                set_rng_states)

__all__ = [
    'AtomicCheckpointHook', 'NonFiniteLossHook', 'RandomStateHook',
    'MixMAEReconstructionHook',
    'atomic_write_text', 'get_rng_states', 'set_rng_states'
]
