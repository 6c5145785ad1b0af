# Copyright (c) OpenMMLab. All rights reserved.
"""Datasets and transforms registered into mmpretrain's registries."""
from .image_folder import (CheckedCustomDataset, CheckedImageNet,
                           FolderChecksMixin)
from .transforms import (CorruptImageError, LoadColorImageFromFile,
                         UnsupportedImageError)

__all__ = [
    'CheckedCustomDataset', 'CheckedImageNet', 'FolderChecksMixin',
    'CorruptImageError', 'LoadColorImageFromFile', 'UnsupportedImageError'
]
