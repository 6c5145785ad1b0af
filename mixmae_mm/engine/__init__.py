# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Training reliability: safe checkpoint loading (registered on import),
atomic checkpoints, exact resume of the random streams, non-finite loss
checks."""
from . import optimizers  # noqa: F401
# importing .checkpoint registers the safe loaders with mmengine
from .checkpoint import (apply_checkpoint_trust, load_from_local,
                         register_safe_loaders, safe_load_context)
from .hooks import (AtomicCheckpointHook, MixMAEReconstructionHook,
                    NonFiniteLossHook, RandomStateHook)
from .launch import setup_cpu_distributed
from .safe_globals import (SAFE_GLOBALS, TRUSTED_GLOBALS_ENV, allowed_globals,
                           trust_checkpoint_globals,
                           trusted_checkpoint_globals)
from .safe_unpickler import (CorruptCheckpointError, UnsafeCheckpointError,
                             checkpoint_damage, safe_torch_load)

__all__ = [
    'SAFE_GLOBALS', 'TRUSTED_GLOBALS_ENV', 'CorruptCheckpointError',
    'UnsafeCheckpointError', 'checkpoint_damage',
    'allowed_globals', 'apply_checkpoint_trust', 'load_from_local',
    'register_safe_loaders', 'safe_load_context',
    'safe_torch_load', 'trust_checkpoint_globals',
    'trusted_checkpoint_globals', 'AtomicCheckpointHook',
    'NonFiniteLossHook', 'RandomStateHook', 'MixMAEReconstructionHook',
    'setup_cpu_distributed'
]
