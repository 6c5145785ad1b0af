# Copyright (c) OpenMMLab. All rights reserved.
"""Training reliability: safe checkpoint loading (registered on import),
atomic checkpoints, exact resume of the random streams, non-finite loss
checks."""
from . import optimizers  # noqa: F401
from .checkpoint import (SAFE_GLOBALS, TRUSTED_GLOBALS_ENV,
                         UnsafeCheckpointError, allowed_globals,
                         apply_checkpoint_trust, load_from_local,
                         register_safe_loaders, safe_load_context,
                         safe_torch_load, trust_checkpoint_globals,
                         trusted_checkpoint_globals)
from .hooks import (AtomicCheckpointHook, MixMAEReconstructionHook,
                    NonFiniteLossHook, RandomStateHook)
from .launch import setup_cpu_distributed

__all__ = [
    'SAFE_GLOBALS', 'TRUSTED_GLOBALS_ENV', 'UnsafeCheckpointError',
    'allowed_globals', 'apply_checkpoint_trust', 'load_from_local',
    'register_safe_loaders', 'safe_load_context',
    'safe_torch_load', 'trust_checkpoint_globals',
    'trusted_checkpoint_globals', 'AtomicCheckpointHook',
    'NonFiniteLossHook', 'RandomStateHook', 'MixMAEReconstructionHook',
    'setup_cpu_distributed'
]
