# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Export MixMAE-pretrained Twins backbone weights (:class:`MixMAETwins`,
mmseg's layout) for the toolboxes' own Twins classes.

* ``'mmseg'``: mmseg's ``PCPVT`` / ``SVT`` (and mmdet through mmseg's
  classes) read the encoder's own keys: the export only strips the prefix.
* ``'mmpretrain'``: mmpretrain 1.2.0's ``PCPVT`` / ``SVT`` name things
  otherwise: ``layers.`` -> ``stages.``; GSA's ``attn.attn.in_proj_*``
  rows ``[q; k; v]`` -> ``attn.q`` (q rows) and ``attn.kv`` (k, v rows, in
  the order its ``kv`` projection splits them); ``attn.attn.out_proj`` ->
  ``attn.proj``; ``norm_list.{i}`` -> ``norm_after_stage{i}``. LSA blocks,
  patch embeddings, PEGs and FFNs keep their names.

Pure functions: nothing is loaded or changed in place.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Tuple

from torch import Tensor

from .ckpt_convert import (ConversionError, UnknownKeysError, new_report,
                           raise_if_unknown)

#: Every key of a MixMAETwins state dict, as a pattern.
_KEY = re.compile(
    r'^(patch_embeds\.\d+\.(projection|norm)|position_encodings\.\d+\.proj'
    r'|layers\.\d+\.\d+\.(norm1|norm2|attn\.(qkv|proj|sr|norm)'
    r'|attn\.attn\.(in_proj|out_proj)|ffn\.layers\.(0\.0|1))'
    r'|norm_list\.\d+)(\.weight|\.bias|_weight|_bias)$')

TARGETS = ('mmseg', 'mmpretrain')


def _mmpretrain_name(name: str) -> str:
    name = re.sub(r'^layers\.', 'stages.', name)
    name = name.replace('attn.attn.out_proj.', 'attn.proj.')
    return re.sub(r'^norm_list\.(\d+)\.', r'norm_after_stage\1.', name)


def export_twins(state_dict: Mapping[str, Any], target: str = 'mmseg',
                 prefix: str = 'backbone.'
                 ) -> Tuple[OrderedDict, Dict[str, Any]]:
    """The backbone weights under ``prefix`` in ``target``'s layout.

    Args:
        state_dict (Mapping[str, Any]): :class:`MixMAETwins` keys under
            ``prefix``; keys outside it (``neck.``, ``head.``) are reported
            as dropped, as a backbone export has none.
        target (str): ``'mmseg'`` or ``'mmpretrain'`` (module docstring).
        prefix (str): Start of the backbone's keys. Defaults to
            ``'backbone.'``; ``''`` for a bare backbone state dict.

    Returns:
        tuple[OrderedDict, dict]: The state dict (input order; the q/kv
        halves are new tensors, every other value is the input tensor) and
        a report with lists ``converted``, ``dropped``, ``unexpected``
        (empty) and ``renamed`` (source key -> new key).

    Raises:
        ValueError: An unknown ``target``.
        UnknownKeysError: Listing every key under ``prefix`` that is not a
            Twins backbone key, or if there is none.
        ConversionError: An ``in_proj`` tensor whose rows are not 3 x C.
    """
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
    report = new_report()
    matched = []
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            report['dropped'].append(key)
        elif isinstance(value, Tensor) and _KEY.match(key[len(prefix):]):
            matched.append((key, key[len(prefix):], value))
        else:
            report['unexpected'].append(key)
    raise_if_unknown(report, 'a Twins',
                     f'MixMAETwins (mmseg PCPVT/SVT) keys under {prefix!r}')
    if not matched:
        raise UnknownKeysError(
            f'no Twins backbone keys under {prefix!r} (for a bare backbone '
            f"state dict use prefix '')", [], report)
    out = OrderedDict()
    for key, name, value in matched:
        new = name if target == 'mmseg' else _mmpretrain_name(name)
        if target == 'mmpretrain' and '.attn.attn.in_proj_' in name:
            if value.shape[0] % 3:
                raise ConversionError(f'{key} {tuple(value.shape)}: rows '
                                      f'are not [q; k; v] of equal size')
            c = value.shape[0] // 3
            kind = name.rsplit('_', 1)[1]  # weight | bias
            base = new.split('attn.attn.')[0] + 'attn.'
            out[f'{base}q.{kind}'] = value[:c].clone()
            out[f'{base}kv.{kind}'] = value[c:].clone()
            new = f'{base}q.{kind} + {base}kv.{kind}'
        else:
            out[new] = value
        report['converted'].append(key)
        report['renamed'][key] = new
    return out, report


__all__ = ['export_twins', 'TARGETS']
