# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""PVTv2 backbone keys from mmdet's layout (``PyramidVisionTransformerV2``,
``MixMAEPVTv2``) back to the original release (whai362/PVT ``pvt_v2.py``):
exactly the inverse of mmdet's ``pvt_convert``, so a MixMAE-pretrained
PVTv2 loads into any mmdet PVTv2 config through ``init_cfg.checkpoint``.

=======================================  ===================================
mmdet (stage i from 0, block j)          release (stage i + 1)
=======================================  ===================================
``layers.i.0.projection.*``              ``patch_embed{i+1}.proj.*``
``layers.i.0.norm.*``                    ``patch_embed{i+1}.norm.*``
``layers.i.1.j.norm1|norm2.*``           ``block{i+1}.j.norm1|norm2.*``
``layers.i.1.j.attn.attn.in_proj_*``     ``block{i+1}.j.attn.q.*`` (rows
                                         [:C]) and ``.attn.kv.*`` ([C:])
``layers.i.1.j.attn.attn.out_proj.*``    ``block{i+1}.j.attn.proj.*``
``layers.i.1.j.attn.sr|norm.*``          ``block{i+1}.j.attn.sr|norm.*``
``layers.i.1.j.ffn.layers.0.*``          ``block{i+1}.j.mlp.fc1.*`` (1x1
                                         conv weight -> Linear weight)
``layers.i.1.j.ffn.layers.1.*``          ``block{i+1}.j.mlp.dwconv.dwconv.*``
``layers.i.1.j.ffn.layers.4.*``          ``block{i+1}.j.mlp.fc2.*`` (as fc1)
``layers.i.2.*``                         ``norm{i+1}.*``
=======================================  ===================================
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Tuple

from torch import Tensor

from .ckpt_convert import (ConversionError, UnknownKeysError, new_report,
                           raise_if_unknown)

_STAGE = r'^layers\.(?P<s>\d+)\.'
_BLOCK = _STAGE + r'1\.(?P<j>\d+)\.'
_WB = r'\.(?P<p>weight|bias)$'
# (pattern, release name); {s} is the 1-based stage. Anchored: any other
# suffix (PVTv1's pos_embed, a plain FFN's layers.3) is unexpected.
_RULES = (
    (_STAGE + r'0\.projection' + _WB, 'patch_embed{s}.proj.{p}'),
    (_STAGE + r'0\.norm' + _WB, 'patch_embed{s}.norm.{p}'),
    (_BLOCK + r'(?P<n>norm1|norm2)' + _WB, 'block{s}.{j}.{n}.{p}'),
    (_BLOCK + r'attn\.attn\.in_proj_(?P<p>weight|bias)$',
     'block{s}.{j}.attn.{{}}.{p}'),
    (_BLOCK + r'attn\.attn\.out_proj' + _WB, 'block{s}.{j}.attn.proj.{p}'),
    (_BLOCK + r'attn\.(?P<n>sr|norm)' + _WB, 'block{s}.{j}.attn.{n}.{p}'),
    (_BLOCK + r'ffn\.layers\.0' + _WB, 'block{s}.{j}.mlp.fc1.{p}'),
    (_BLOCK + r'ffn\.layers\.1' + _WB, 'block{s}.{j}.mlp.dwconv.dwconv.{p}'),
    (_BLOCK + r'ffn\.layers\.4' + _WB, 'block{s}.{j}.mlp.fc2.{p}'),
    (_STAGE + r'2' + _WB, 'norm{s}.{p}'),
)
#: Weights every release stage / block has; biases are not required since
#: ``qkv_bias=False`` drops q/kv (and in mmdet out_proj) biases.
STAGE_KEYS = ('patch_embed{s}.proj.weight', 'patch_embed{s}.norm.weight',
              'norm{s}.weight')
BLOCK_KEYS = ('norm1.weight', 'attn.q.weight', 'attn.kv.weight',
              'attn.proj.weight', 'norm2.weight', 'mlp.fc1.weight',
              'mlp.dwconv.dwconv.weight', 'mlp.fc2.weight')


def _split_in_proj(key: str, value: Tensor) -> Tuple[Tensor, Tensor]:
    """``in_proj`` = cat[q; k; v] (3C rows) -> (q, kv = [k; v])."""
    shape = tuple(value.shape)
    if not (len(shape) == 1 and shape[0] % 3 == 0
            or len(shape) == 2 and shape[0] == 3 * shape[1]):
        raise ConversionError(
            f'{key} {shape} is not a (3C, C) / (3C,) q-k-v projection')
    c = shape[0] // 3
    # clone: a saved slice would carry the whole 3C storage
    return value[:c].clone(), value[c:].clone()


def _check_complete(out: Mapping[str, Tensor]) -> None:
    """Raise if a stage or block lacks a weight: mmdet's ``strict=False``
    load would silently leave it randomly initialised."""
    stages = sorted({int(m.group(1)) for k in out
                     for m in [re.match(r'^(?:patch_embed|block|norm)(\d+)',
                                        k)] if m})
    missing = []
    if stages != list(range(1, len(stages) + 1)):
        missing.append(f'stages {stages} are not 1..{len(stages)}')
    for s in stages:
        missing += [k.format(s=s) for k in STAGE_KEYS
                    if k.format(s=s) not in out]
        blocks = sorted({int(m.group(1)) for k in out
                         for m in [re.match(rf'^block{s}\.(\d+)\.', k)] if m})
        if blocks != list(range(len(blocks))) or not blocks:
            missing.append(f'block{s}: blocks {blocks} are not 0..N-1')
        for j in blocks:
            pre = f'block{s}.{j}.'
            missing += [pre + k for k in BLOCK_KEYS if pre + k not in out]
            if (pre + 'attn.sr.weight' in out) != (pre + 'attn.norm.weight'
                                                   in out):
                missing.append(pre + 'attn.sr/attn.norm (only one present)')
    if missing:
        raise ConversionError('incomplete PVTv2 backbone:\n  ' +
                              '\n  '.join(missing))


def pvtv2_to_release(state_dict: Mapping[str, Any],
                     prefix: str = 'backbone.'
                     ) -> Tuple[OrderedDict, Dict[str, Any]]:
    """Export mmdet-layout PVTv2 backbone weights in the original release
    layout (whai362/PVT ``pvt_v2.py``, see the module docstring).

    Pure: nothing is loaded or changed in place; values are the input
    tensors, except the q/kv halves (new tensors) and the fc weights
    (reshaped views).

    Args:
        state_dict (Mapping[str, Any]): mmdet-layout keys under ``prefix``;
            keys outside it (``neck.``, ``head.``) are reported as dropped,
            as a backbone release has none.
        prefix (str): Start of the backbone's keys. Defaults to
            ``'backbone.'``; ``''`` for a bare backbone state dict.

    Returns:
        tuple[OrderedDict, dict]: The release state dict (input order) and
        a report with lists ``converted`` (source keys), ``dropped``
        (keys outside ``prefix``) and ``unexpected`` (empty), and
        ``renamed`` (source key -> release key; ``q + kv`` for in_proj).

    Raises:
        UnknownKeysError: (a ``KeyError``) listing every key under
            ``prefix`` that is not a PVTv2 backbone key, or if there is
            none.
        ConversionError: On the linear (li) variant, which mmdet cannot
            build, on a tensor of the wrong rank, or on missing weights.
    """
    report = new_report()
    matched = []
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            report['dropped'].append(key)
            continue
        name = key[len(prefix):]
        rule = next(((m, t) for p, t in _RULES
                     for m in [re.match(p, name)] if m), None)
        if rule is None or not isinstance(value, Tensor):
            report['unexpected'].append(key)
            continue
        m, template = rule
        parts = m.groupdict()
        parts['s'] = int(parts['s']) + 1
        matched.append((key, value, template.format(**parts)))
    raise_if_unknown(
        report, 'a PVTv2', f'mmdet PyramidVisionTransformerV2 keys under '
        f'{prefix!r}; release-format (patch_embed1., block1.) files need '
        f'no export')
    if not matched:
        raise UnknownKeysError(
            f'no PVTv2 backbone keys under {prefix!r} (for a bare backbone '
            f'state dict use prefix \'\')', [], report)

    out = OrderedDict()
    for key, value, new in matched:
        if new.endswith('attn.sr.weight') and value.dim() == 4 and \
                value.shape[2:] == (1, 1):
            raise ConversionError(
                f'{key} is a 1x1 spatial-reduction conv: this is the linear '
                f'PVTv2 variant (pvt_v2_b2_li), which mmdet\'s '
                f'PyramidVisionTransformerV2 cannot build; not exported')
        if '{}' in new:
            q, kv = _split_in_proj(key, value)
            out[new.format('q')], out[new.format('kv')] = q, kv
            new = f"{new.format('q')} + {new.format('kv')}"
        elif new.endswith(('fc1.weight', 'fc2.weight')):
            if value.dim() != 4 or value.shape[2:] != (1, 1):
                raise ConversionError(
                    f'{key} {tuple(value.shape)} is not a 1x1 conv weight')
            out[new] = value.reshape(value.shape[:2])
        else:
            out[new] = value
        report['converted'].append(key)
        report['renamed'][key] = new
    _check_complete(out)
    return out, report


__all__ = ['pvtv2_to_release', 'STAGE_KEYS', 'BLOCK_KEYS']
