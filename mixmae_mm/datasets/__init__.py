# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Datasets, samplers and transforms registered into mmpretrain's (datasets,
transforms) and mmengine's (wrappers, samplers) registries."""
from .image_folder import (CheckedCustomDataset, CheckedImageNet,
                           FolderChecksMixin)
from .seeded import (SampleKey, SeededDataset, SeededSampler,
                     SeededSamplesMixin, seeded_rngs)
from .transforms import (CorruptImageError, LoadColorImageFromFile,
                         UnsupportedImageError)

__all__ = [
    'CheckedCustomDataset', 'CheckedImageNet', 'FolderChecksMixin',
    'SampleKey', 'SeededDataset', 'SeededSampler', 'SeededSamplesMixin',
    'seeded_rngs', 'CorruptImageError', 'LoadColorImageFromFile',
    'UnsupportedImageError'
]
