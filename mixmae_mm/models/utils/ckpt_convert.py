# Copyright (c) OpenMMLab. All rights reserved.
"""Pure key/tensor converters from other MixMIM checkpoint layouts."""
import re
from collections import OrderedDict
from typing import Dict, Tuple

from torch import Tensor

#: Derived tensors that this package recomputes instead of loading.
_DERIVED = re.compile(r'(^|\.)(relative_position_index|absolute_pos_embed|'
                      r'decoder_pos_embed|attn_mask)$')

# mmpretrain (mmcv bricks) names -> mixmae_mm (timm / official) names
_MMPRETRAIN_RULES = [
    (r'^backbone\.patch_embed\.projection\.', 'backbone.patch_embed.proj.'),
    (r'^backbone\.patch_embed\.norm\.', 'backbone.patch_embed.norm.'),
    (r'^(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)'
     r'\.ln1\.', r'\1.norm1.'),
    (r'^(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)'
     r'\.ln2\.', r'\1.norm2.'),
    (r'^(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)'
     r'\.ffn\.layers\.0\.0\.', r'\1.mlp.fc1.'),
    (r'^(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)'
     r'\.ffn\.layers\.1\.', r'\1.mlp.fc2.'),
    (r'^(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)'
     r'\.attn\.(qkv|proj|relative_position_bias_table)', r'\1.attn.\2'),
    (r'^(backbone\.layers\.\d+\.downsample\.(norm|reduction))\.',
     r'\1.'),
    (r'^backbone\.norm\.', 'backbone.norm{last}.'),
    (r'^neck\.ln1\.', 'neck.decoder_norm.'),
    (r'^neck\.(mask_token|decoder_embed|decoder_pred)', r'neck.\1'),
    (r'^head\.fc\.', 'head.fc.'),
]


def unfold_to_timm_order(t: Tensor) -> Tensor:
    """Reorder PatchMerging weights from mmcv's ``nn.Unfold`` channel order
    (c, ki, kj) to timm's concat order [(0,0), (1,0), (0,1), (1,1)] x c.

    Args:
        t (Tensor): ``reduction.weight`` (O, 4C) or ``norm.*`` (4C,).

    Returns:
        Tensor: Same shape, timm order.
    """
    lead = t.shape[:-1]
    c = t.shape[-1] // 4
    t = t.reshape(*lead, c, 4).transpose(-1, -2)  # (..., 4[ki*2+kj], C)
    return t[..., [0, 2, 1, 3], :].reshape(*lead, 4 * c)


def timm_to_unfold_order(t: Tensor) -> Tensor:
    """Inverse of :func:`unfold_to_timm_order`."""
    lead = t.shape[:-1]
    c = t.shape[-1] // 4
    t = t.reshape(*lead, 4, c)[..., [0, 2, 1, 3], :]  # (..., 4, C)
    return t.transpose(-1, -2).reshape(*lead, 4 * c)


def convert_mmpretrain_mixmim(state_dict: Dict[str, Tensor],
                              num_stages: int = 4
                              ) -> Tuple[OrderedDict, Dict[str, list]]:
    """Convert an mmpretrain ``MixMIM`` / ``MixMIMTransformer`` state dict.

    Args:
        state_dict (dict): Keys with ``backbone.`` / ``neck.`` / ``head.``
            prefixes, as mmpretrain saves them.
        num_stages (int): Stages of the encoder; the final norm becomes
            ``norm{num_stages - 1}``. Defaults to 4.

    Returns:
        tuple[OrderedDict, dict]: The converted state dict, and a report
        with lists ``converted`` and ``dropped`` (derived tensors).

    Raises:
        KeyError: On any key this converter does not understand.
    """
    out, report = OrderedDict(), dict(converted=[], dropped=[])
    for key, value in state_dict.items():
        if _DERIVED.search(key):
            report['dropped'].append(key)
            continue
        for pattern, repl in _MMPRETRAIN_RULES:
            if re.match(pattern, key):
                new_key = re.sub(pattern,
                                 repl.replace('{last}', str(num_stages - 1)),
                                 key)
                break
        else:
            raise KeyError(f'unknown key {key!r} in an mmpretrain MixMIM '
                           f'checkpoint (expected backbone./neck./head. keys '
                           f'of MixMIMTransformer, MixMIMPretrainDecoder or '
                           f'LinearClsHead)')
        if '.downsample.' in key:
            value = unfold_to_timm_order(value)
        out[new_key] = value
        report['converted'].append(key)
    return out, report
