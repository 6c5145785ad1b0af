# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Pictures of what MixMAE learned."""
from .reconstruction import (COLUMNS, reconstruction_grid,
                             render_model_reconstruction, save_png,
                             to_pixels, unnormalize_prediction)

__all__ = [
    'COLUMNS', 'reconstruction_grid', 'render_model_reconstruction',
    'save_png', 'to_pixels', 'unnormalize_prediction'
]
