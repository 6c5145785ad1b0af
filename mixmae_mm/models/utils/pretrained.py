# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Loading checkpoints into a MixMAE encoder: the strict
``init_cfg=dict(type='Pretrained')`` load and the load pre-hook, both
through :func:`~.ckpt_convert.filter_encoder_state_dict`."""
import re
from typing import Any, Dict, MutableMapping

from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_with_prefix)
from torch import nn

from .ckpt_convert import filter_encoder_state_dict


def filter_encoder_state_dict_(model: nn.Module,
                               state_dict: MutableMapping[str, Any],
                               prefix: str = '') -> Dict[str, Any]:
    """In-place :func:`filter_encoder_state_dict` that logs what it did:
    the body of the encoder's load pre-hook, so that every load path
    (``init_cfg``, ``load_from``, ``load_state_dict``) adapts checkpoints
    the same way.

    Args:
        model (nn.Module): The target encoder.
        state_dict (MutableMapping[str, Any]): Changed in place (a load
            hook must keep the dict object ``load_state_dict`` walks).
        prefix (str): Start of the encoder's keys. Defaults to ''.

    Returns:
        dict: The report of :func:`filter_encoder_state_dict`.
    """
    filtered, report = filter_encoder_state_dict(state_dict, model, prefix)
    for key in report['derived'] + report['pretrain_only']:
        del state_dict[key]
    logger = MMLogger.get_current_instance()
    for key, (src, dst) in report['resized'].items():
        state_dict[key] = filtered[key]
        logger.info(f'resized {key} from window {src} to {dst}')
    if report['pretrain_only']:
        logger.info(f'{type(model).__name__}: pretraining-only keys '
                    f"dropped: {report['pretrain_only']}")
    return report


def load_pretrained_encoder(model: nn.Module, cfg: dict) -> None:
    """Load ``init_cfg=dict(type='Pretrained', ...)`` into an encoder
    strictly.

    The checkpoint goes through :func:`filter_encoder_state_dict`; then
    missing, unexpected or mis-shaped keys raise one error listing them all,
    except output norms ``norm{i}`` that the checkpoint lacks entirely (new
    for dense use: left as initialised, reported in the log).

    Args:
        model (nn.Module): The encoder, already initialised for the keys the
            checkpoint lacks.
        cfg (dict): ``checkpoint`` (path or URL), optional ``prefix`` (e.g.
            ``'backbone.'``, stripped) and ``strict`` (default True; False
            logs the mismatches as a warning and loads the keys that match).

    Raises:
        ValueError: With ``strict``, on missing, unexpected or mis-shaped
            keys.
    """
    logger = MMLogger.get_current_instance()
    ckpt = cfg['checkpoint']
    prefix = cfg.get('prefix')
    if prefix:
        state_dict = _load_checkpoint_with_prefix(
            prefix, ckpt, map_location='cpu')
    else:
        state_dict = _load_checkpoint(ckpt, map_location='cpu')
        state_dict = state_dict.get('state_dict', state_dict)
    state_dict, report = filter_encoder_state_dict(state_dict, model)
    for key, (src, dst) in report['resized'].items():
        logger.info(f'resized {key} from window {src} to {dst}')
    # the [MASK] token of a mask-token (SimMIM-style) encoder is only used
    # in pretraining; the filter dropped it if this model has none
    dropped = report['pretrain_only']
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    new_norms = [
        k for k in missing
        if re.match(r'norm\d+\.', k) and not any(
            s.startswith(k.split('.')[0] + '.') for s in state_dict)
    ]
    missing = [k for k in missing if k not in new_norms]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(own[k].shape))
                  for k in state_dict
                  if k in own and state_dict[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        lines = [f'checkpoint {ckpt!r} (prefix {prefix!r}) does not '
                 f'match {type(model).__name__}:']
        lines += [f'  missing in checkpoint: {k} {tuple(own[k].shape)}'
                  for k in missing]
        lines += [f'  unexpected in checkpoint: {k} '
                  f'{tuple(state_dict[k].shape)}' for k in unexpected]
        lines += [f'  shape mismatch: {k} checkpoint {a} vs model {b}'
                  for k, a, b in mismatched]
        msg = '\n'.join(lines)
        if cfg.get('strict', True):
            raise ValueError(
                msg + '\nIs it a checkpoint of another arch? Pass '
                "init_cfg=dict(..., strict=False) to load the matching "
                'keys anyway.')
        logger.warning(msg)
        for k, _, _ in mismatched:
            state_dict.pop(k)
    model.load_state_dict(state_dict, strict=False)
    logger.info(f'{type(model).__name__}: loaded {len(state_dict)} '
                f'tensors from {ckpt}' + (
                    f'; new output norms initialised: {new_norms}'
                    if new_norms else '') + (
                    f'; pretraining-only keys dropped: {dropped}'
                    if dropped else ''))


__all__ = ['filter_encoder_state_dict_', 'load_pretrained_encoder']
