# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Checkpoint keys of the MixMAE encoder: which are derived,
pretraining-only or resized (:func:`filter_encoder_state_dict`, as timm's
``checkpoint_filter_fn``; the encoder's load pre-hook, its ``Pretrained``
init, the converters and the publish step all go through it), and how
mmpretrain and official Sense-X/MixMIM state dicts name them.

A converter returns the new state dict and a *report*, a dict of lists:
``converted`` (source keys kept, possibly renamed), ``dropped`` (derived
tensors that ``mixmae_mm`` recomputes) and ``unexpected`` (keys it does not
understand, raised as :class:`UnknownKeysError`: it never guesses). Reading
and writing checkpoint files is the tools' part
(``tools/model_converters/checkpoint_io.py``).
"""
import math
import re
from collections import OrderedDict
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

import torch
from torch import Tensor, nn

from ..layers.pos_embed import sincos_pos_embed_2d
from ..layers.rel_pos import relative_position_index, resize_rel_pos_table

#: Last name components of derived tensors: mixmae_mm recomputes them from
#: the config, so checkpoints' copies are dropped everywhere.
DERIVED_KEYS = ('relative_position_index', 'absolute_pos_embed',
                'decoder_pos_embed', 'attn_mask')
#: Top-level keys of pretraining encoders that fine-tuning does not use (the
#: [MASK] token of a SimMIM-style encoder).
PRETRAIN_ONLY_KEYS = ('mask_token', )


def is_derived_key(key: str) -> bool:
    """Whether ``key`` names a derived tensor (:data:`DERIVED_KEYS`), at any
    depth and under any prefix."""
    return key.rsplit('.', 1)[-1] in DERIVED_KEYS


def _resize_table(table: Any, target: Tensor, window: Tuple[int, int]
                  ) -> Optional[Tuple[Tensor, Tuple[int, int]]]:
    """``table`` resized to ``window`` and its source window, or None when
    it already fits or is not a square window's table with ``target``'s
    heads (then the load reports the mismatch)."""
    if not isinstance(table, Tensor) or table.dim() != 2 or \
            table.shape == target.shape or table.shape[1] != target.shape[1]:
        return None
    side = math.isqrt(table.shape[0])  # 2W-1 of a square W x W window
    if side * side != table.shape[0] or side % 2 == 0:
        return None
    src = ((side + 1) // 2, ) * 2
    # ((2S-1)^2, nH) -> ((2Wh-1) * (2Ww-1), nH)
    return resize_rel_pos_table(table, src, window), src


def filter_encoder_state_dict(state_dict: Mapping[str, Any],
                              model: Optional[nn.Module] = None,
                              prefix: str = ''
                              ) -> Tuple[OrderedDict, Dict[str, Any]]:
    """Adapt the encoder keys of a mixmae_mm state dict to a target encoder,
    in the spirit of timm's ``checkpoint_filter_fn``.

    Only keys that start with ``prefix`` are the encoder's; others pass
    through untouched. Of the encoder's keys:

    * derived tensors (:data:`DERIVED_KEYS`) are dropped;
    * pretraining-only keys (:data:`PRETRAIN_ONLY_KEYS`) are dropped when
      ``model`` has no such parameter;
    * a relative position bias table of a square window, with ``model``'s
      number of heads but another size, is resized by bicubic
      interpolation (:func:`resize_rel_pos_table`) to the ``window_size``
      of ``model``'s attention module that owns the table.

    Pure: nothing is loaded, logged or changed in place; the values are the
    input tensors except the resized tables.

    Args:
        state_dict (Mapping[str, Any]): Encoder keys in mixmae_mm names
            after ``prefix`` (``layers.{s}.blocks.{j}.attn...``).
        model (nn.Module, optional): The target encoder, only read (its
            parameter and buffer names, bias table shapes and attention
            windows). None: only the derived tensors are dropped.
        prefix (str): Start of the encoder's keys, e.g. ``'backbone.'``.
            Defaults to ''.

    Returns:
        tuple[OrderedDict, dict]: The new state dict (input order) and a
        report: ``derived`` and ``pretrain_only`` (lists of dropped keys)
        and ``resized`` (key -> (source window, target window)).
    """
    own: Dict[str, Tensor] = {}
    if model is not None:
        own.update(model.named_parameters())
        own.update(model.named_buffers())
    out = OrderedDict()
    report: Dict[str, Any] = dict(derived=[], pretrain_only=[], resized={})
    for key, value in state_dict.items():
        name = key[len(prefix):]
        if not key.startswith(prefix):
            pass  # another module's key
        elif is_derived_key(name):
            report['derived'].append(key)
            continue
        elif model is not None and name in PRETRAIN_ONLY_KEYS \
                and name not in own:
            report['pretrain_only'].append(key)
            continue
        elif name in own and name.endswith('relative_position_bias_table'):
            attn = model.get_submodule(name.rsplit('.', 1)[0])
            window = tuple(attn.window_size)
            resized = _resize_table(value, own[name], window)
            if resized is not None:
                value = resized[0]
                report['resized'][key] = (resized[1], window)
        out[key] = value
    return out, report


class UnknownKeysError(KeyError):
    """A converter met keys it does not understand.

    Args:
        message (str): What went wrong.
        keys (list[str]): The keys.
        report (dict): The conversion report so far.
    """

    def __init__(self, message: str, keys: List[str], report: dict):
        super().__init__(message)
        self.message = message
        self.keys = list(keys)
        self.report = report

    def __str__(self) -> str:
        return self.message


class ConversionError(ValueError):
    """A checkpoint has the right keys but content the target cannot
    represent (e.g. a learned position embedding that would be dropped)."""


# mmpretrain (mmcv bricks) names -> mixmae_mm (timm / official) names
_MMP_BLOCK = (r'^(backbone\.layers\.\d+\.blocks\.\d+|'
              r'neck\.decoder_blocks\.\d+)')
_MMPRETRAIN_RULES = [
    (r'^backbone\.patch_embed\.projection\.', 'backbone.patch_embed.proj.'),
    (r'^backbone\.patch_embed\.norm\.', 'backbone.patch_embed.norm.'),
    (_MMP_BLOCK + r'\.ln1\.', r'\1.norm1.'),
    (_MMP_BLOCK + r'\.ln2\.', r'\1.norm2.'),
    (_MMP_BLOCK + r'\.ffn\.layers\.0\.0\.', r'\1.mlp.fc1.'),
    (_MMP_BLOCK + r'\.ffn\.layers\.1\.', r'\1.mlp.fc2.'),
    (_MMP_BLOCK + r'\.attn\.(qkv|proj|relative_position_bias_table)',
     r'\1.attn.\2'),
    (r'^(backbone\.layers\.\d+\.downsample\.(norm|reduction))\.', r'\1.'),
    (r'^backbone\.norm\.', 'backbone.norm{last}.'),
    (r'^neck\.ln1\.', 'neck.decoder_norm.'),
    (r'^neck\.(mask_token|decoder_embed|decoder_pred)', r'neck.\1'),
    (r'^head\.fc\.', 'head.fc.'),
]

_WB = r'\.(weight|bias)$'
_TIMM_BLOCK = r'(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)'

# official Sense-X/MixMIM (timm) names -> mixmae_mm names; anchored, so a
# key with any other suffix is unexpected.
_OFFICIAL_RULES = [
    (r'^patch_embed\.(proj|norm)' + _WB, r'backbone.patch_embed.\1.\2'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.' + _TIMM_BLOCK + _WB,
     r'backbone.layers.\1.blocks.\2.\3.\4'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$',
     r'backbone.layers.\1.blocks.\2.attn.relative_position_bias_table'),
    (r'^layers\.(\d+)\.downsample\.norm' + _WB,
     r'backbone.layers.\1.downsample.norm.\2'),
    (r'^layers\.(\d+)\.downsample\.reduction\.weight$',
     r'backbone.layers.\1.downsample.reduction.weight'),
    (r'^norm' + _WB, r'backbone.norm{last}.\1'),
    (r'^mask_token$', 'neck.mask_token'),
    (r'^decoder_(embed|norm|pred)' + _WB, r'neck.decoder_\1.\2'),
    (r'^decoder_blocks\.(\d+)\.' + _TIMM_BLOCK + _WB,
     r'neck.decoder_blocks.\1.\2.\3'),
    (r'^head' + _WB, r'head.fc.\1'),
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


def new_report() -> Dict[str, Any]:
    """An empty converter report (see the module docstring)."""
    return dict(converted=[], renamed={}, dropped=[], unexpected=[])


def raise_if_unknown(report: dict, source: str, expected: str) -> None:
    """Raise :class:`UnknownKeysError` if ``report['unexpected']`` is not
    empty.

    Args:
        report (dict): A converter report.
        source (str): What was read, e.g. 'an official MixMIM'.
        expected (str): What it may hold, for the message.
    """
    keys = report['unexpected']
    if keys:
        shown = '\n  '.join(keys[:20])
        more = f'\n  ... and {len(keys) - 20} more' if len(keys) > 20 else ''
        raise UnknownKeysError(
            f'{len(keys)} unknown key(s) in {source} checkpoint '
            f'(expected {expected}):\n  {shown}{more}', keys, report)


def _indices(state_dict: Mapping[str, Any], pattern: str) -> set:
    """The integers that group 1 of ``pattern`` matches in the keys."""
    return {
        int(m.group(1)) for k in state_dict
        for m in [re.match(pattern, k)] if m
    }


def checkpoint_kind(state_dict: Mapping[str, Any]) -> str:
    """'pretrain' (with ``neck.`` keys), 'classifier' (with ``head.``
    keys) or 'backbone'."""
    if any(k.startswith('neck.') for k in state_dict):
        return 'pretrain'
    if any(k.startswith('head.') for k in state_dict):
        return 'classifier'
    return 'backbone'


def _apply_rules(state_dict: Mapping[str, Any],
                 rules: Sequence[Tuple[str, str]],
                 last: int,
                 check_derived: bool,
                 transform: Optional[Callable[[str, Tensor], Tensor]] = None
                 ) -> Tuple[OrderedDict, Dict[str, Any]]:
    """The rename loop shared by the converters.

    Derived tensors are dropped by :func:`filter_encoder_state_dict` (and
    checked with ``check_derived``); every other key is renamed by the
    first matching ``(pattern, replacement)`` rule (``{last}`` = index of
    the last stage) and optionally transformed; keys no rule matches, or
    whose value is not a tensor, are reported as ``unexpected``.

    Returns:
        tuple[OrderedDict, dict]: Converted state dict and report.
    """
    kept, filtered = filter_encoder_state_dict(state_dict)
    out, report = OrderedDict(), new_report()
    for key in filtered['derived']:
        if check_derived:
            _check_derived(key, state_dict[key])
        report['dropped'].append(key)
    for key, value in kept.items():
        rule = next(((p, r) for p, r in rules if re.match(p, key)), None)
        if rule is None or not isinstance(value, Tensor):
            report['unexpected'].append(key)
            continue
        new_key = re.sub(rule[0], rule[1].replace('{last}', str(last)), key)
        out[new_key] = transform(key, value) if transform else value
        report['converted'].append(key)
        report['renamed'][key] = new_key
    return out, report


def _check_derived(key: str, value: Tensor) -> None:
    """Make sure a derived tensor equals what mixmae_mm recomputes, so that
    dropping it does not change the model."""
    if key.endswith('relative_position_index'):
        n = value.shape[0]
        w = math.isqrt(n)
        if value.shape != (n, n) or w * w != n or not torch.equal(
                value.long(), relative_position_index((w, w), (w, w))):
            raise ConversionError(
                f'{key} {tuple(value.shape)} is not the standard relative '
                f'position index of a square window; mixmae_mm derives it '
                f'and cannot keep a custom one')
    elif key.endswith(('absolute_pos_embed', 'decoder_pos_embed')):
        if value.dim() != 3 or value.shape[0] != 1:
            raise ConversionError(
                f'{key} must have shape (1, L, C), got {tuple(value.shape)}')
        side = math.isqrt(value.shape[1])
        if side * side != value.shape[1]:
            raise ConversionError(
                f'{key} has {value.shape[1]} positions, not a square grid')
        ref = sincos_pos_embed_2d(value.shape[2], (side, side))  # (1, L, C)
        if not torch.allclose(value.float(), ref, atol=1e-4):
            raise ConversionError(
                f'{key} is not the fixed 2D sin-cos table of a {side}x{side} '
                f'grid (max difference '
                f'{(value.float() - ref).abs().max():.3g}); mixmae_mm '
                f'recomputes it, so dropping a learned one would change the '
                f'model')


def convert_mmpretrain_mixmim(state_dict: Dict[str, Tensor],
                              num_stages: int = 4,
                              check_derived: bool = False
                              ) -> Tuple[OrderedDict, Dict[str, list]]:
    """Convert an mmpretrain ``MixMIM`` / ``MixMIMTransformer`` state dict.

    Args:
        state_dict (dict): Keys with ``backbone.`` / ``neck.`` / ``head.``
            prefixes, as mmpretrain saves them.
        num_stages (int): Stages of the encoder; the final norm becomes
            ``norm{num_stages - 1}``. Defaults to 4.
        check_derived (bool): Check that every dropped tensor equals the one
            mixmae_mm recomputes (mmpretrain's ``MixMIMTransformer`` keeps
            whatever ``absolute_pos_embed`` the checkpoint has, zeros when
            trained from scratch). Defaults to False.

    Returns:
        tuple[OrderedDict, dict]: The converted state dict, and a report
        with lists ``converted`` (source keys), ``dropped`` (derived
        tensors) and ``unexpected`` (empty), and ``renamed`` (source key ->
        new key).

    Raises:
        UnknownKeysError: (a ``KeyError``) listing every key this converter
            does not understand.
        ConversionError: With ``check_derived``, if a dropped tensor is not
            the standard one.
    """
    out, report = _apply_rules(
        state_dict, _MMPRETRAIN_RULES, num_stages - 1, check_derived,
        lambda key, value: unfold_to_timm_order(value)
        if '.downsample.' in key else value)
    raise_if_unknown(
        report, 'an mmpretrain MixMIM', 'backbone./neck./head. keys of '
        'MixMIMTransformer, MixMIMPretrainDecoder or LinearClsHead')
    return out, report


def convert_official_mixmim(state_dict: Dict[str, Tensor],
                            check_derived: bool = True
                            ) -> Tuple[OrderedDict, Dict[str, Any]]:
    """Convert an official Sense-X/MixMIM (MixMAE) state dict.

    Both layouts of the official code are understood: pretraining
    (``models_mixmim.py``: encoder, ``mask_token``, ``decoder_*``) and
    fine-tuned (``models_mixmim_ft.py``: encoder and ``head``). Keys get the
    ``backbone.`` / ``neck.`` / ``head.`` prefixes of :class:`MixMAE` and
    mmpretrain's ``ImageClassifier`` (``head.*`` -> ``head.fc.*``), the
    final ``norm`` becomes ``backbone.norm{S-1}`` (S stages, counted from
    the keys), and PatchMerging weights stay as they are (both use timm's
    channel order). Derived tensors (:data:`DERIVED_KEYS`: the fixed sin-cos
    tables ``absolute_pos_embed`` and ``decoder_pos_embed``, the
    ``relative_position_index`` and ``attn_mask`` buffers) are dropped.

    Args:
        state_dict (dict): The official ``checkpoint['model']``; a
            ``module.`` prefix on every key (DDP) is stripped.
        check_derived (bool): Check that every dropped tensor equals the one
            mixmae_mm recomputes (raise otherwise). Defaults to True.

    Returns:
        tuple[OrderedDict, dict]: The converted state dict and the report
        (``converted``, ``renamed``, ``dropped``, ``unexpected``), plus
        ``kind``: 'pretrain', 'classifier' or 'backbone'.

    Raises:
        UnknownKeysError: (a ``KeyError``) listing every key this converter
            does not understand.
        ConversionError: If a derived tensor is not the standard one.
    """
    keys = list(state_dict)
    if keys and all(k.startswith('module.') for k in keys):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    last = max(_indices(state_dict, r'^layers\.(\d+)\.'), default=3)
    out, report = _apply_rules(state_dict, _OFFICIAL_RULES, last,
                               check_derived)
    raise_if_unknown(
        report, 'an official MixMIM', 'the encoder, decoder and head keys '
        'of Sense-X/MixMIM models_mixmim.py / models_mixmim_ft.py')
    report['kind'] = checkpoint_kind(out)
    return out, report


def infer_arch(state_dict: Dict[str, Tensor]) -> Dict[str, Any]:
    """Read the architecture of a converted (mixmae_mm) state dict from its
    tensor shapes.

    Args:
        state_dict (dict): Keys with ``backbone.`` (and optionally
            ``neck.`` / ``head.``) prefixes.

    Returns:
        dict: Empty if there is no MixMIM encoder; else ``backbone``
        (``arch`` with ``embed_dims``, ``depths``, ``num_heads``;
        ``window_size``), and when present ``neck``
        (``in_channels``, ``embed_dims``, ``depth``, ``patch_size``; the
        decoder's head count is not stored in the weights) and ``head``
        (``num_classes``, ``in_channels``).
    """
    sd = state_dict
    info: Dict[str, Any] = {}
    if 'backbone.patch_embed.proj.weight' not in sd:
        return info
    embed = sd['backbone.patch_embed.proj.weight'].shape[0]
    depths, heads, windows = [], [], []
    s = 0
    while any(k.startswith(f'backbone.layers.{s}.') for k in sd):
        blocks = _indices(sd, rf'^backbone\.layers\.{s}\.blocks\.(\d+)\.')
        table = sd.get(f'backbone.layers.{s}.blocks.0.attn.'
                       'relative_position_bias_table')
        if table is None:
            return info  # not a MixMIM encoder; nothing to infer
        depths.append(len(blocks))
        heads.append(int(table.shape[1]))
        windows.append((math.isqrt(table.shape[0]) + 1) // 2)
        s += 1
    info['backbone'] = dict(
        arch=dict(embed_dims=int(embed), depths=depths, num_heads=heads),
        window_size=windows)
    if 'neck.decoder_embed.weight' in sd:
        dim, in_ch = sd['neck.decoder_embed.weight'].shape
        depth = len(_indices(sd, r'^neck\.decoder_blocks\.(\d+)\.'))
        pred = sd['neck.decoder_pred.weight'].shape[0]
        info['neck'] = dict(
            in_channels=int(in_ch),
            embed_dims=int(dim),
            depth=depth,
            patch_size=math.isqrt(pred // 3))
    if 'head.fc.weight' in sd:
        num_classes, in_ch = sd['head.fc.weight'].shape
        info['head'] = dict(num_classes=int(num_classes),
                            in_channels=int(in_ch))
    return info


__all__ = [
    'DERIVED_KEYS', 'PRETRAIN_ONLY_KEYS', 'is_derived_key',
    'filter_encoder_state_dict', 'UnknownKeysError', 'ConversionError',
    'unfold_to_timm_order', 'timm_to_unfold_order', 'new_report',
    'raise_if_unknown', 'checkpoint_kind', 'convert_mmpretrain_mixmim',
    'convert_official_mixmim', 'infer_arch'
]
