"""mixmae_mm: MixMAE for the OpenMMLab stack.

Importing the package registers every module into mmpretrain's registries.
"""
# registration (and the safe checkpoint loader) happens on import
from . import datasets, engine, models  # noqa: F401
from .utils.config_scope import register_config_scope
from .version import __version__

# `mixmae_mm::path/to/config.py` in _base_ and mmengine.hub.get_config
register_config_scope()

__all__ = ['__version__']
