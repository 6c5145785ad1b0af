# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Checkpoint files for the converter and publish tools in this folder:
the restricted file loader, the training fields around the weights, the
publish step and the printed key accounting.

The key mapping itself (renaming, derived tensors, pretraining-only keys)
is package code: :mod:`mixmae_mm.models.utils.ckpt_convert`. Reports are the
converters' (``converted``, ``dropped``, ``unexpected`` lists).
"""
import pickle
from collections import OrderedDict
from numbers import Number
from typing import Any, Callable, Dict, Iterable, Sequence, Tuple

from torch import Tensor

from mixmae_mm.engine import (UnsafeCheckpointError, safe_torch_load,
                              trusted_checkpoint_globals)
from mixmae_mm.models.utils.ckpt_convert import (ConversionError,
                                                 UnknownKeysError,
                                                 checkpoint_kind,
                                                 convert_mmpretrain_mixmim,
                                                 convert_official_mixmim,
                                                 filter_encoder_state_dict,
                                                 infer_arch, new_report,
                                                 raise_if_unknown)

#: Checkpoint fields that only serve resuming; ``publish_checkpoint`` drops
#: them (mmengine Runner fields, as mmpretrain's ``publish_model.py``).
TRAINING_FIELDS = ('optimizer', 'param_schedulers', 'message_hub',
                   'hook_msgs', 'ema_state_dict', 'scaler', 'amp')
#: ``meta`` entries that only serve resuming.
TRAINING_META = ('rng_states', )
#: Top-level fields of official checkpoints besides ``'model'``
#: (``util/misc.py`` ``save_model``); they only serve resuming.
OFFICIAL_TRAINING_FIELDS = ('optimizer', 'epoch', 'scaler', 'args')
#: What ``--trusted`` allows: the ``args`` of official MixMIM checkpoints.
TRUSTED_GLOBALS = ('argparse.Namespace', )


class UnsafeCheckpointFileError(pickle.UnpicklingError):
    """The package's restricted checkpoint loader refused a file; the
    message names the refused globals and the opt-in."""


def load_checkpoint_file(path: str, trusted: bool = False) -> Any:
    """Read a checkpoint with the package's safe loader
    (:func:`mixmae_mm.engine.safe_torch_load`: a restricted unpickler with
    the allow-list of mmengine Runner checkpoints, the same on every
    supported torch).

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


def _convert_file(checkpoint: Dict[str, Any], weights_field: str,
                  training: Sequence[str],
                  convert: Callable[[Dict[str, Tensor]], Tuple[dict, dict]],
                  source: str) -> Tuple[Dict[str, Any], dict, dict]:
    """Split the fields of a checkpoint, convert its weights and merge the
    field accounting into the report (first, as the fields come first).

    Returns:
        tuple[dict, dict, dict]: Source weights, converted weights, report.
    """
    fields = new_report()
    state_dict = _split_fields(checkpoint, weights_field, training, fields)
    try:
        out, report = convert(state_dict)
    except UnknownKeysError as err:
        err.report['unexpected'][:0] = fields['unexpected']
        err.report['dropped'][:0] = fields['dropped']
        raise
    report['dropped'][:0] = fields['dropped']
    report['unexpected'][:0] = fields['unexpected']
    raise_if_unknown(report, source,
                     f"{weights_field!r}, 'meta' and {list(training)}")
    return state_dict, out, report


def convert_official_checkpoint(checkpoint: Dict[str, Any],
                                check_derived: bool = True,
                                source: str = ''
                                ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Convert a whole official checkpoint file's content.

    Args:
        checkpoint (dict): ``{'model': state_dict, 'optimizer', 'epoch',
            'scaler', 'args'}`` as the official ``save_model`` writes, or a
            bare state dict.
        check_derived (bool): See
            :func:`~mixmae_mm.models.utils.ckpt_convert.convert_official_mixmim`.
        source (str): Where it came from, stored in ``meta``.

    Returns:
        tuple[dict, dict]: ``{'state_dict', 'meta'}`` in mixmae_mm format
        (``meta``: ``converted_from``, ``source``, ``kind``, ``arch`` from
        ``infer_arch``, ``epoch`` if known) and the report.

    Raises:
        UnknownKeysError: On unknown fields or keys.
        ConversionError: If a derived tensor is not the standard one.
    """
    state_dict, out, report = _convert_file(
        checkpoint, 'model', OFFICIAL_TRAINING_FIELDS,
        lambda sd: convert_official_mixmim(sd, check_derived),
        'an official MixMIM')
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
        num_stages (int): See ``convert_mmpretrain_mixmim``.
        check_derived (bool): See ``convert_mmpretrain_mixmim``.
            Defaults to True.
        source (str): Where it came from, stored in ``meta``.

    Returns:
        tuple[dict, dict]: ``{'state_dict', 'meta'}`` in mixmae_mm format
        and the report (with ``kind``).

    Raises:
        UnknownKeysError: On unknown fields or keys.
        ConversionError: If a derived tensor is not the standard one.
    """
    _, out, report = _convert_file(
        checkpoint, 'state_dict', TRAINING_FIELDS,
        lambda sd: convert_mmpretrain_mixmim(sd, num_stages, check_derived),
        'an mmpretrain MixMIM')
    report['kind'] = checkpoint_kind(out)
    meta = dict(
        converted_from='open-mmlab/mmpretrain MixMIM',
        source=source,
        kind=report['kind'],
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
    prefix='backbone.')`` works; derived tensors dropped by
    ``filter_encoder_state_dict``, as every mixmae_mm load recomputes them)
    and a plain ``meta`` (built-in types only, numpy scalars converted,
    resume-only entries such as ``rng_states`` dropped), and drops the
    fields that only serve resuming (:data:`TRAINING_FIELDS`). The result
    loads with ``torch.load(weights_only=True)``.

    Pretraining-only weights (a SimMIM-style ``backbone.mask_token``) are
    kept: they are learned, and the fine-tuning load drops them itself.

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
    report = new_report()
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
    kept = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            report['unexpected'].append(f'{key} ({type(value).__name__})')
        elif backbone_only and not key.startswith('backbone.'):
            report['dropped'].append(key)
        else:
            kept[key] = value
    report['converted'] = list(kept)
    raise_if_unknown(
        report, 'this', 'state_dict, meta and training state '
        f'{list(TRAINING_FIELDS)}; drop other fields explicitly (publish '
        'option --strip-field NAME)')
    kept, filtered = filter_encoder_state_dict(kept)
    report['dropped'] += filtered['derived']
    out = OrderedDict(
        (k, v.detach().clone().contiguous()) for k, v in kept.items())
    report['converted'] = list(out)
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


__all__ = [
    'ConversionError', 'UnknownKeysError', 'UnsafeCheckpointFileError',
    'TRAINING_FIELDS', 'TRAINING_META', 'OFFICIAL_TRAINING_FIELDS',
    'TRUSTED_GLOBALS', 'load_checkpoint_file', 'convert_official_checkpoint',
    'convert_mmpretrain_checkpoint', 'publish_checkpoint', 'format_report'
]
