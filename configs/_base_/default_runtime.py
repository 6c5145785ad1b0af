# Runtime shared by mixmae_mm's mmpretrain configs.
_base_ = 'mmpretrain::_base_/default_runtime.py'

# importing mixmae_mm registers MixMAE* into mmpretrain's registries
custom_imports = dict(imports=['mixmae_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
