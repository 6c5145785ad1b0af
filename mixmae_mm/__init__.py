"""mixmae_mm: MixMAE for the OpenMMLab stack.

Importing the package registers every module into mmpretrain's registries.
"""
from . import models  # noqa: F401
from . import datasets, engine  # noqa: F401  (reliability: safe loading, hooks)
from .engine import optimizers  # noqa: F401
from .version import __version__

__all__ = ['__version__']
