# Copyright (c) OpenMMLab. All rights reserved.
"""What checkpoint loads may unpickle: the allow-list and the opt-ins.

The restricted unpickler (:mod:`mixmae_mm.engine.safe_unpickler`) resolves
only the globals of :func:`allowed_globals`: :data:`SAFE_GLOBALS` (exactly
what an mmengine 0.10.7 Runner checkpoint and plain state dicts pickle, on
torch 2.1 to 2.15 and numpy 1.x / 2.x) plus the opted-in trusted globals
below. It returns the listed objects and never imports anything;
``builtins.getattr`` resolves to :func:`_history_buffer_getattr`, which
only returns ``HistoryBuffer.min/max/mean/current``.

Opt-in for trusted files (e.g. official MixMIM checkpoints, which pickle
``argparse.Namespace`` under ``'args'``): name the extra globals, each as
``module.qualname``; they are added to the allow-list of our loads, which
stay restricted (globals of ``os``, ``sys``, ``subprocess`` and code-running
builtins cannot be trusted):

* environment variable, for any tool (mmpretrain / mmdet / mmseg train
  scripts included): ``MIXMAE_TRUSTED_GLOBALS=argparse.Namespace``
  (comma-separated list);
* in Python: :func:`trust_checkpoint_globals` (process-wide) or the
  context manager :func:`trusted_checkpoint_globals`;
* in a config run by ``tools/train.py``:
  ``trusted_checkpoint_globals = ['argparse.Namespace']``.
"""
import _codecs
import collections
import contextlib
import importlib
import os
import pickle
import types
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer

#: Environment variable with extra trusted globals (comma-separated).
TRUSTED_GLOBALS_ENV = 'MIXMAE_TRUSTED_GLOBALS'

#: ``HistoryBuffer`` statistics that a pickle may look up by ``getattr``.
_HISTORY_BUFFER_STATS = ('min', 'max', 'mean', 'current')

#: numpy dtypes whose ``dtype`` classes are listed (numeric only, no
#: object dtype).
_NUMERIC_DTYPES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8',
                   'f2', 'f4', 'f8', 'c8', 'c16')

#: Modules and globals that no opt-in can add: they run code or touch the
#: system (torch's ``weights_only`` blocks the same modules).
_NEVER_TRUSTED_MODULES = ('os', 'posix', 'nt', 'sys', 'subprocess')
_NEVER_TRUSTED = ('builtins.eval', 'builtins.exec', 'builtins.compile',
                  'builtins.__import__', 'builtins.open',
                  'builtins.getattr', 'builtins.setattr',
                  'builtins.delattr', 'builtins.globals', 'builtins.vars')


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Restricted stand-in for ``builtins.getattr`` during unpickling.

    ``HistoryBuffer.__getstate__`` stores ``_statistics_methods``, a dict of
    functions (``HistoryBuffer.min`` ...), which pickle writes as
    ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would
    let a pickle reach any attribute of any allowed object (e.g.
    ``getattr(getattr, '__self__')`` is the ``builtins`` module, one step
    from ``exec``), and ``HistoryBuffer.__setstate__`` copies the result into
    a dict that mmengine later calls. This only resolves the four default
    statistics of ``HistoryBuffer``.

    Args:
        obj (Any): Must be ``HistoryBuffer``.
        name (str): One of ``min``, ``max``, ``mean``, ``current``.

    Returns:
        Callable: The function ``HistoryBuffer.<name>``.
    """
    if obj is not HistoryBuffer or name not in _HISTORY_BUFFER_STATS:
        raise pickle.UnpicklingError(
            f'getattr({getattr(obj, "__qualname__", type(obj).__name__)}, '
            f'{name!r}) is not allowed: the checkpoint allow-list only '
            f'resolves HistoryBuffer.{{{",".join(_HISTORY_BUFFER_STATS)}}}')
    return getattr(HistoryBuffer, name)


def _numpy_globals() -> Dict[str, Any]:
    """numpy's array/scalar rebuild functions, taken from what numpy itself
    pickles (no import of the deprecated ``numpy.core`` on numpy 2), under
    the numpy 1.x and 2.x module names, so that files written with either
    load; ``ndarray``, ``dtype`` and the numeric dtype classes."""
    out: Dict[str, Any] = {}
    for fn in (np.float64(0).__reduce__()[0], np.zeros(1).__reduce__()[0]):
        for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            out[f'{mod}.{fn.__name__}'] = fn
    out['numpy.ndarray'] = np.ndarray
    out['numpy.dtype'] = np.dtype
    # numpy >= 1.25 names the concrete classes (numpy.dtypes.Float64DType);
    # before, they are not importable and no pickle names them
    for code in _NUMERIC_DTYPES:
        cls = type(np.dtype(code))
        if cls is not np.dtype:
            out[f'{cls.__module__}.{cls.__qualname__}'] = cls
    return out


def _torch_globals() -> Dict[str, Any]:
    """What torch pickles for tensors, parameters, sizes, devices, layouts
    and dtypes in plain state dicts, optimizer and scheduler states."""
    out: Dict[str, Any] = {
        'torch.Tensor': torch.Tensor,
        'torch.nn.parameter.Parameter': torch.nn.Parameter,
        'torch.Size': torch.Size,
        'torch.device': torch.device,
        # layouts (torch.strided ...) pickle as _get_layout('torch.strided')
        'torch.serialization._get_layout': torch.serialization._get_layout,
        # tensors with attributes or of Parameter-like subclasses
        'torch._tensor._rebuild_from_type_v2':
        torch._tensor._rebuild_from_type_v2,
    }
    for fn in ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3',
               '_rebuild_parameter', '_rebuild_parameter_with_state',
               '_rebuild_meta_tensor_no_storage'):
        if hasattr(torch._utils, fn):  # _rebuild_tensor_v3: not in 2.1
            out[f'torch._utils.{fn}'] = getattr(torch._utils, fn)
    # dtypes pickle as the global torch.float32 (aliases too: torch.float)
    for name, value in vars(torch).items():
        if isinstance(value, torch.dtype):
            out[f'torch.{name}'] = value
    return out


def _build_safe_globals() -> Dict[str, Any]:
    """The allow-list; see :data:`SAFE_GLOBALS`."""
    out = {
        # message_hub, state_dict
        'collections.OrderedDict': collections.OrderedDict,
        'collections.Counter': collections.Counter,
        # bytes under pickle protocol 2 (torch.save's default)
        '_codecs.encode': _codecs.encode,
        'builtins.bytes': bytes,
        'builtins.bytearray': bytearray,
        'builtins.set': set,
        'builtins.frozenset': frozenset,
        'builtins.complex': complex,
        'builtins.slice': slice,
        # message_hub['log_scalars'] values (NEWOBJ + __setstate__)
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        # HistoryBuffer._statistics_methods: getattr(HistoryBuffer, 'min')
        # ..., resolved by a restricted getattr (see its docstring);
        # __builtin__ is the protocol 2 name when fix_imports is off
        'builtins.getattr': _history_buffer_getattr,
        '__builtin__.getattr': _history_buffer_getattr,
    }
    # numpy scalars (np.float64 ...) in meta / message_hub, numpy arrays in
    # HistoryBuffer._log_history / _count_history
    out.update(_numpy_globals())
    out.update(_torch_globals())
    return out


#: Every global the restricted unpickler resolves without opt-in, as
#: ``{'module.qualname': object}``: what an mmengine 0.10.7 Runner
#: checkpoint (meta, state_dict, message_hub, optimizer, param_schedulers)
#: and plain state dicts pickle, on torch 2.1 to 2.15 and numpy 1.x / 2.x:
#: ``collections.OrderedDict``, ``_codecs.encode``, builtin containers and
#: numbers, ``torch._utils`` tensor and parameter rebuild functions,
#: ``torch.Size``, ``torch.device``, torch dtypes and layouts, numpy's
#: ``scalar`` / ``_reconstruct`` (``numpy.core`` and ``numpy._core``),
#: ``numpy.ndarray``, ``numpy.dtype`` (+ the numeric dtype classes),
#: ``mmengine.logging.history_buffer.HistoryBuffer`` and ``builtins.getattr``
#: (restricted to ``HistoryBuffer.min/max/mean/current``).
SAFE_GLOBALS: Mapping[str, Any] = types.MappingProxyType(
    _build_safe_globals())

_trusted: Dict[str, Any] = {}


def _resolve_global(name: str) -> Any:
    """Import ``module.qualname`` (the longest importable module prefix)."""
    if name in _NEVER_TRUSTED or name.split('.')[0] in _NEVER_TRUSTED_MODULES:
        raise ValueError(
            f'{name} cannot be a trusted checkpoint global: it runs code or '
            f'touches the system')
    parts = name.split('.')
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ValueError(
        f'Cannot resolve trusted checkpoint global {name!r}: give it as '
        f'module.qualname, e.g. argparse.Namespace')


def trust_checkpoint_globals(names: Iterable[str]) -> None:
    """Allow extra globals in every later checkpoint load of this process.

    Only for files you trust (e.g. official MixMIM checkpoints that pickle
    ``argparse.Namespace``). Loading stays restricted; the named globals are
    merely added to the allow-list.

    Args:
        names (Iterable[str]): Dotted names, e.g. ``['argparse.Namespace']``.
    """
    if isinstance(names, str):
        names = [names]
    for name in names:
        _trusted[name] = _resolve_global(name)
        print_log(
            f'Checkpoint loads now trust the global {name} (opt-in)',
            logger='current')


@contextlib.contextmanager
def trusted_checkpoint_globals(names: Iterable[str]) -> Iterator[None]:
    """Context manager form of :func:`trust_checkpoint_globals`.

    Args:
        names (Iterable[str]): Dotted names, e.g. ``['argparse.Namespace']``.

    Yields:
        None: Inside the block, loads also allow ``names``.
    """
    if isinstance(names, str):
        names = [names]
    saved = dict(_trusted)
    try:
        for name in names:
            _trusted[name] = _resolve_global(name)
        yield
    finally:
        _trusted.clear()
        _trusted.update(saved)


def _env_trusted() -> Dict[str, Any]:
    value = os.environ.get(TRUSTED_GLOBALS_ENV, '')
    return {
        n.strip(): _resolve_global(n.strip())
        for n in value.split(',') if n.strip()
    }


def allowed_globals() -> Dict[str, Any]:
    """Everything our loads allow right now.

    Returns:
        dict: ``{'module.qualname': object}``: :data:`SAFE_GLOBALS` plus the
        opted-in trusted globals (which cannot replace an entry of
        :data:`SAFE_GLOBALS`, e.g. the restricted ``getattr``).
    """
    return {**_trusted, **_env_trusted(), **SAFE_GLOBALS}


__all__ = [
    'SAFE_GLOBALS', 'TRUSTED_GLOBALS_ENV', 'allowed_globals',
    'trust_checkpoint_globals', 'trusted_checkpoint_globals'
]
