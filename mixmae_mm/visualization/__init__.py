# Copyright (c) OpenMMLab. All rights reserved.
"""Pictures of what MixMAE learned."""
from .reconstruction import (COLUMNS, reconstruction_grid,
                             render_model_reconstruction, save_png,
                             to_pixels, unnormalize_prediction)

__all__ = [
    'COLUMNS', 'reconstruction_grid', 'render_model_reconstruction',
    'save_png', 'to_pixels', 'unnormalize_prediction'
]
