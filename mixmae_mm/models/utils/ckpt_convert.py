# Copyright (c) OpenMMLab. All rights reserved.
"""Pure key/tensor converters from other MixMIM checkpoint layouts, and the
publish step.

Every converter returns the new state dict together with a *report*, a dict
of lists: ``converted`` (source keys that were kept, possibly renamed),
``dropped`` (derived tensors that ``mixmae_mm`` recomputes) and
``unexpected`` (keys it does not understand). A converter never guesses: if
``unexpected`` is not empty it raises :class:`UnknownKeysError` listing them.
The command-line wrappers live in ``tools/model_converters/``.
"""
import math
import pickle
import re
from collections import OrderedDict
from numbers import Number
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

import torch
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
_OFFICIAL_DERIVED = re.compile(
    r'^(absolute_pos_embed|decoder_pos_embed|'
    r'layers\.\d+\.blocks\.\d+\.attn\.relative_position_index|'
    r'(layers\.\d+\.blocks\.\d+\.)?attn_mask)$')

#: Checkpoint fields that only serve resuming; ``publish_checkpoint`` drops
#: them (mmengine Runner fields, as mmpretrain's ``publish_model.py``).
TRAINING_FIELDS = ('optimizer', 'param_schedulers', 'message_hub',
                   'hook_msgs', 'ema_state_dict', 'scaler', 'amp')
#: ``meta`` entries that only serve resuming.
TRAINING_META = ('rng_states', )


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


def _new_report() -> Dict[str, Any]:
    return dict(converted=[], renamed={}, dropped=[], unexpected=[])


def _raise_unknown(report: dict, source: str, expected: str) -> None:
    keys = report['unexpected']
    if keys:
        shown = '\n  '.join(keys[:20])
        more = f'\n  ... and {len(keys) - 20} more' if len(keys) > 20 else ''
        raise UnknownKeysError(
            f'{len(keys)} unknown key(s) in {source} checkpoint '
            f'(expected {expected}):\n  {shown}{more}', keys, report)


def _apply_rules(state_dict: Dict[str, Any],
                 is_derived: Callable[[str], Any],
                 rules: Sequence[Tuple[str, str]],
                 last: int,
                 check_derived: bool,
                 transform: Optional[Callable[[str, Tensor], Tensor]] = None
                 ) -> Tuple[OrderedDict, Dict[str, Any]]:
    """The rename loop shared by the converters.

    Derived tensors are dropped (and checked with ``check_derived``); every
    other key is renamed by the first matching ``(pattern, replacement)``
    rule (``{last}`` = index of the last stage) and optionally transformed;
    keys no rule matches, or whose value is not a tensor, are reported as
    ``unexpected``.

    Returns:
        tuple[OrderedDict, dict]: Converted state dict and report.
    """
    out, report = OrderedDict(), _new_report()
    for key, value in state_dict.items():
        if is_derived(key):
            if check_derived:
                _check_derived(key, value)
            report['dropped'].append(key)
            continue
        rule = next(((p, r) for p, r in rules if re.match(p, key)), None)
        if rule is None or not isinstance(value, Tensor):
            report['unexpected'].append(key)
            continue
        new_key = re.sub(rule[0], rule[1].replace('{last}', str(last)), key)
        out[new_key] = transform(key, value) if transform else value
        report['converted'].append(key)
        report['renamed'][key] = new_key
    return out, report


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
        state_dict, _DERIVED.search, _MMPRETRAIN_RULES, num_stages - 1,
        check_derived, lambda key, value: unfold_to_timm_order(value)
        if '.downsample.' in key else value)
    _raise_unknown(
        report, 'an mmpretrain MixMIM', 'backbone./neck./head. keys of '
        'MixMIMTransformer, MixMIMPretrainDecoder or LinearClsHead')
    return out, report


def _sincos_table(embed_dims: int, side: int) -> Tensor:
    from ..layers.pos_embed import sincos_pos_embed_2d
    return sincos_pos_embed_2d(embed_dims, (side, side))


def _check_derived(key: str, value: Tensor) -> None:
    """Make sure a derived tensor equals what mixmae_mm recomputes, so that
    dropping it does not change the model."""
    if key.endswith('relative_position_index'):
        from ..layers.rel_pos import relative_position_index
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
        ref = _sincos_table(value.shape[2], side)
        if not torch.allclose(value.float(), ref, atol=1e-4):
            raise ConversionError(
                f'{key} is not the fixed 2D sin-cos table of a {side}x{side} '
                f'grid (max difference '
                f'{(value.float() - ref).abs().max():.3g}); mixmae_mm '
                f'recomputes it, so dropping a learned one would change the '
                f'model')


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
    channel order). Derived tensors are dropped: ``absolute_pos_embed``,
    ``decoder_pos_embed`` (fixed sin-cos tables), ``relative_position_index``
    and ``attn_mask`` buffers.

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
    stages = [
        int(m.group(1)) for k in state_dict
        for m in [re.match(r'^layers\.(\d+)\.', k)] if m
    ]
    last = max(stages) if stages else 3
    out, report = _apply_rules(state_dict, _OFFICIAL_DERIVED.match,
                               _OFFICIAL_RULES, last, check_derived)
    _raise_unknown(
        report, 'an official MixMIM', 'the encoder, decoder and head keys '
        'of Sense-X/MixMIM models_mixmim.py / models_mixmim_ft.py')
    if any(k.startswith('neck.') for k in out):
        report['kind'] = 'pretrain'
    elif any(k.startswith('head.') for k in out):
        report['kind'] = 'classifier'
    else:
        report['kind'] = 'backbone'
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
        blocks = {
            int(m.group(1)) for k in sd
            for m in [re.match(rf'^backbone\.layers\.{s}\.blocks\.(\d+)\.',
                               k)] if m
        }
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
        depth = len({
            int(m.group(1)) for k in sd
            for m in [re.match(r'^neck\.decoder_blocks\.(\d+)\.', k)] if m
        })
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


#: Top-level fields of official checkpoints besides ``'model'``
#: (``util/misc.py`` ``save_model``); they only serve resuming.
OFFICIAL_TRAINING_FIELDS = ('optimizer', 'epoch', 'scaler', 'args')


def _split_fields(checkpoint: Dict[str, Any], weights_field: str,
                  training: Sequence[str], report: dict) -> Dict[str, Any]:
    """The weights of a wrapped checkpoint; other fields are reported as
    dropped (known training state) or unexpected."""
    if weights_field in checkpoint and isinstance(
            checkpoint[weights_field], dict):
        for field in checkpoint:
            if field == weights_field or field == 'meta':
                continue
            target = 'dropped' if field in training else 'unexpected'
            report[target].append(f'[field] {field}')
        return checkpoint[weights_field]
    if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        return checkpoint  # a bare state dict
    raise UnknownKeysError(
        f'not a checkpoint: no {weights_field!r} field and not a dict of '
        f'tensors (fields: {sorted(checkpoint)})', sorted(checkpoint), report)


def convert_official_checkpoint(checkpoint: Dict[str, Any],
                                check_derived: bool = True,
                                source: str = ''
                                ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Convert a whole official checkpoint file's content.

    Args:
        checkpoint (dict): ``{'model': state_dict, 'optimizer', 'epoch',
            'scaler', 'args'}`` as the official ``save_model`` writes, or a
            bare state dict.
        check_derived (bool): See :func:`convert_official_mixmim`.
        source (str): Where it came from, stored in ``meta``.

    Returns:
        tuple[dict, dict]: ``{'state_dict', 'meta'}`` in mixmae_mm format
        (``meta``: ``converted_from``, ``source``, ``kind``, ``arch`` from
        :func:`infer_arch`, ``epoch`` if known) and the report.

    Raises:
        UnknownKeysError: On unknown fields or keys.
        ConversionError: If a derived tensor is not the standard one.
    """
    fields = _new_report()
    state_dict = _split_fields(checkpoint, 'model', OFFICIAL_TRAINING_FIELDS,
                               fields)
    try:
        out, report = convert_official_mixmim(state_dict, check_derived)
    except UnknownKeysError as err:
        err.report['unexpected'][:0] = fields['unexpected']
        err.report['dropped'][:0] = fields['dropped']
        raise
    report['dropped'][:0] = fields['dropped']
    report['unexpected'][:0] = fields['unexpected']
    _raise_unknown(report, 'an official MixMIM',
                   f"'model' and {list(OFFICIAL_TRAINING_FIELDS)}")
    meta = dict(
        converted_from='Sense-X/MixMIM',
        source=source,
        kind=report['kind'],
        arch=infer_arch(out))
    epoch = checkpoint.get('epoch') if state_dict is not checkpoint else None
    if isinstance(epoch, (int, float)):
        meta['epoch'] = epoch
    return dict(state_dict=out, meta=meta), report


def convert_mmpretrain_checkpoint(checkpoint: Dict[str, Any],
                                  num_stages: int = 4,
                                  check_derived: bool = True,
                                  source: str = ''
                                  ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Convert a whole mmpretrain MixMIM checkpoint file's content.

    Args:
        checkpoint (dict): ``{'state_dict', 'meta', ...}`` as mmengine
            saves it (training fields are dropped), or a bare state dict.
        num_stages (int): See :func:`convert_mmpretrain_mixmim`.
        check_derived (bool): See :func:`convert_mmpretrain_mixmim`.
            Defaults to True.
        source (str): Where it came from, stored in ``meta``.

    Returns:
        tuple[dict, dict]: ``{'state_dict', 'meta'}`` in mixmae_mm format
        and the report.

    Raises:
        UnknownKeysError: On unknown fields or keys.
        ConversionError: If a derived tensor is not the standard one.
    """
    fields = _new_report()
    state_dict = _split_fields(checkpoint, 'state_dict', TRAINING_FIELDS,
                               fields)
    try:
        out, report = convert_mmpretrain_mixmim(state_dict, num_stages,
                                                check_derived)
    except UnknownKeysError as err:
        err.report['unexpected'][:0] = fields['unexpected']
        err.report['dropped'][:0] = fields['dropped']
        raise
    report['dropped'][:0] = fields['dropped']
    report['unexpected'][:0] = fields['unexpected']
    _raise_unknown(report, 'an mmpretrain MixMIM',
                   f"'state_dict', 'meta' and {list(TRAINING_FIELDS)}")
    kind = ('pretrain' if any(k.startswith('neck.') for k in out) else
            'classifier' if any(k.startswith('head.') for k in out) else
            'backbone')
    report['kind'] = kind
    meta = dict(
        converted_from='open-mmlab/mmpretrain MixMIM',
        source=source,
        kind=kind,
        arch=infer_arch(out))
    return dict(state_dict=out, meta=meta), report


def _plain(value: Any) -> Tuple[bool, Any]:
    """``value`` as built-in Python types, if it can be (numpy scalars and
    arrays become numbers and lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, Number):  # numpy scalars
        return True, value.item() if hasattr(value, 'item') else value
    if hasattr(value, 'tolist') and not isinstance(value, Tensor):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        if all(ok for ok, _ in items):
            vals = [v for _, v in items]
            return True, tuple(vals) if isinstance(value, tuple) else vals
        return False, None
    if isinstance(value, dict):
        items = {k: _plain(v) for k, v in value.items()}
        if all(isinstance(k, str) and ok for k, (ok, _) in items.items()):
            return True, {k: v for k, (_, v) in items.items()}
        return False, None
    return False, None


def publish_checkpoint(checkpoint: Dict[str, Any],
                       backbone_only: bool = False,
                       extra_fields: Iterable[str] = ()
                       ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Reduce a training checkpoint to what inference and fine-tuning need.

    Keeps ``state_dict`` (tensors only; with ``backbone_only`` only the
    ``backbone.*`` entries, prefix kept so ``init_cfg=dict(type='Pretrained',
    prefix='backbone.')`` works) and a plain ``meta`` (built-in types only,
    numpy scalars converted, resume-only entries such as ``rng_states``
    dropped), and drops the fields that only serve resuming
    (:data:`TRAINING_FIELDS`). The result loads with
    ``torch.load(weights_only=True)``.

    Args:
        checkpoint (dict): A Runner checkpoint (``state_dict``, ``meta``,
            ``optimizer``...) or a bare state dict of tensors.
        backbone_only (bool): Keep only ``backbone.*`` weights.
            Defaults to False.
        extra_fields (Iterable[str]): More top-level fields to drop.

    Returns:
        tuple[dict, dict]: ``{'state_dict': ..., 'meta': ...}`` and a report
        with lists ``converted`` (kept weights), ``dropped`` (weights not
        kept, fields and meta entries removed) and ``unexpected`` (empty).

    Raises:
        UnknownKeysError: On top-level fields that are neither weights,
            ``meta`` nor known training state, or on non-tensor weights.
    """
    report = _new_report()
    if 'state_dict' in checkpoint:
        state_dict = checkpoint['state_dict']
        fields = {k: v for k, v in checkpoint.items() if k != 'state_dict'}
    elif checkpoint and all(isinstance(v, Tensor)
                            for v in checkpoint.values()):
        state_dict, fields = checkpoint, {}
    else:
        raise UnknownKeysError(
            'not a checkpoint: no `state_dict` field and not a dict of '
            f'tensors (fields: {sorted(checkpoint)})', sorted(checkpoint),
            report)
    strip = set(TRAINING_FIELDS) | set(extra_fields)
    meta = {}
    for field, value in fields.items():
        if field == 'meta':
            meta = value or {}
        elif field in strip:
            report['dropped'].append(f'[field] {field}')
        else:
            report['unexpected'].append(f'[field] {field}')
    out = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            report['unexpected'].append(f'{key} ({type(value).__name__})')
        elif backbone_only and not key.startswith('backbone.'):
            report['dropped'].append(key)
        else:
            out[key] = value.detach().clone().contiguous()
            report['converted'].append(key)
    _raise_unknown(
        report, 'this', 'state_dict, meta and training state '
        f'{list(TRAINING_FIELDS)}; drop other fields explicitly (publish '
        'option --strip-field NAME)')
    if backbone_only and not out:
        raise UnknownKeysError(
            'backbone_only: the checkpoint has no `backbone.` weights',
            [], report)
    clean_meta = {}
    for key, value in meta.items():
        ok, plain = _plain(value)
        if key in TRAINING_META or not ok or not isinstance(key, str):
            report['dropped'].append(f'[meta] {key}')
        else:
            clean_meta[key] = plain
    return dict(state_dict=out, meta=clean_meta), report


def format_report(report: Dict[str, Any], verbose: bool = True) -> str:
    """Human-readable key accounting of a converter report.

    Args:
        report (dict): As returned by the converters.
        verbose (bool): List every key, not only the counts.
            Defaults to True.

    Returns:
        str: Lines ``converted: N``, ``dropped: N``, ``unexpected: N`` each
        followed by its keys.
    """
    lines = []
    renamed = report.get('renamed', {})
    for name in ('converted', 'dropped', 'unexpected'):
        keys = report.get(name, [])
        lines.append(f'{name}: {len(keys)}')
        if verbose:
            for key in keys:
                new = renamed.get(key)
                lines.append(f'  {key} -> {new}' if new and new != key else
                             f'  {key}')
    return '\n'.join(lines)


class UnsafeCheckpointFileError(pickle.UnpicklingError):
    """The package's restricted checkpoint loader refused a file; the
    message names the refused globals and the opt-in."""


#: What ``--trusted`` allows: the ``args`` of official MixMIM checkpoints.
TRUSTED_GLOBALS = ('argparse.Namespace', )


def load_checkpoint_file(path: str, trusted: bool = False) -> Any:
    """Read a checkpoint with the package's safe loader
    (:func:`mixmae_mm.engine.checkpoint.safe_torch_load`: a restricted
    unpickler with the allow-list of mmengine Runner checkpoints, the same
    on every supported torch).

    Args:
        path (str): The file.
        trusted (bool): Also allow :data:`TRUSTED_GLOBALS`
            (``argparse.Namespace``, pickled by official MixMIM
            checkpoints); the load stays restricted.
            Defaults to False.

    Returns:
        Any: The unpickled object.

    Raises:
        UnsafeCheckpointFileError: If the file pickles other globals; the
            message names them and, for ``argparse.Namespace``, the
            ``--trusted`` flag.
    """
    from mixmae_mm.engine.checkpoint import (UnsafeCheckpointError,
                                             safe_torch_load,
                                             trusted_checkpoint_globals)
    try:
        with trusted_checkpoint_globals(TRUSTED_GLOBALS if trusted else ()):
            return safe_torch_load(path, map_location='cpu')
    except UnsafeCheckpointError as err:
        hint = ''
        if 'argparse.Namespace' in str(err) and not trusted:
            hint = ('\nOfficial MixMIM checkpoints pickle argparse.Namespace '
                    "under 'args'. If you trust this file, re-run the "
                    'converter with --trusted (allows exactly '
                    'argparse.Namespace; the load stays restricted).')
        raise UnsafeCheckpointFileError(f'{err}{hint}') from None


__all__ = [
    'UnknownKeysError', 'ConversionError', 'UnsafeCheckpointFileError',
    'TRAINING_FIELDS', 'OFFICIAL_TRAINING_FIELDS', 'TRUSTED_GLOBALS',
    'unfold_to_timm_order', 'timm_to_unfold_order',
    'convert_mmpretrain_mixmim', 'convert_official_mixmim',
    'convert_official_checkpoint', 'convert_mmpretrain_checkpoint',
    'infer_arch', 'publish_checkpoint', 'format_report',
    'load_checkpoint_file'
]
