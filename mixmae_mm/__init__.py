"""mixmae_mm: MixMAE for the OpenMMLab stack.

Importing the package registers every module into mmpretrain's registries.
"""
# registration (and the safe checkpoint loader) happens on import
from . import datasets, engine, models  # noqa: F401
from .version import __version__

__all__ = ['__version__']
