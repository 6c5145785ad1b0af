from .mixing import (mix_images, resample_mask, sample_mix_mask, unmix,
                     upsample_mask)
from .patch_ops import patchify, unpatchify
from .pos_embed import sincos_pos_embed_2d
from .rel_pos import relative_position_index, resize_rel_pos_table
from .transformer import Block, Mlp
from .window_attention import WindowAttention

__all__ = [
    'mix_images', 'resample_mask', 'sample_mix_mask', 'unmix',
    'upsample_mask', 'patchify', 'unpatchify', 'sincos_pos_embed_2d',
    'relative_position_index', 'resize_rel_pos_table', 'Block', 'Mlp',
    'WindowAttention'
]
