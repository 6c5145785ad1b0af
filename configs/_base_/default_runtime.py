# Runtime shared by mixmae_mm's mmpretrain configs.
_base_ = 'mmpretrain::_base_/default_runtime.py'

# importing mixmae_mm registers MixMAE* into mmpretrain's registries
custom_imports = dict(imports=['mixmae_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'

# Crash-safe checkpoints (temp file + rename; `last_checkpoint` names only
# complete files), exact resume of the random streams (the mix mask included)
# and a stop with the iteration number on a NaN/inf loss.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='RandomStateHook'), dict(type='NonFiniteLossHook')]

# Distributed runs: mmengine's DDP wrapper with a training step compile=True
# can take (the data preprocessor and the update eager; docs/en/compile.md).
# Without compile it is mmengine's step.
model_wrapper_cfg = dict(type='CompilableDistributedDataParallel')
