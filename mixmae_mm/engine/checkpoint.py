# Copyright (c) OpenMMLab. All rights reserved.
"""Safe checkpoint loading for mmengine 0.10.7 on torch >= 2.6.

mmengine's loaders call ``torch.load`` without an allow-list. Since torch
2.6 that means ``weights_only=True`` with torch's defaults only, which
refuses mmengine's own Runner checkpoints (numpy objects and a
``HistoryBuffer`` in ``message_hub``), so ``--resume``, ``load_from`` and
``init_cfg=dict(type='Pretrained', ...)`` break.

Importing this module (``import mixmae_mm`` does) re-registers mmengine's
checkpoint schemes so that every load goes through
``torch.load(..., weights_only=True)`` with :data:`SAFE_GLOBALS`, an explicit
allow-list of exactly what mmengine 0.10.7 Runner checkpoints pickle,
enabled only for the duration of the load
(``torch.serialization.safe_globals``; nothing is added to torch's global
allow-list):

* ``''`` (local files): :func:`load_from_local`, which replaces mmengine's
  loader of the same name (also rebound as
  ``mmengine.runner.checkpoint.load_from_local``). The empty prefix is the
  fall-back scheme: ``CheckpointLoader._get_checkpoint_loader`` tries the
  registered prefixes as regular expressions in reverse lexicographic order,
  and ``''`` sorts last, so every path that matches no URL scheme is local.
* every other scheme registered at import time (``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, ``mmcls://``, ``pavi://``,
  ``s3://``...): mmengine's loader runs inside the same allow-list context;
  those loaders rely on torch's default ``weights_only=True`` (torch >= 2.6).

All of ``Runner.resume``, ``Runner.load_checkpoint`` (``load_from``),
``mmengine.runner.load_checkpoint`` (``init_cfg`` ``Pretrained``, with or
without ``prefix=``) and mmdet / mmseg backbones that call
``CheckpointLoader`` or ``_load_checkpoint`` pass through these schemes,
whatever the registry scope, as soon as ``mixmae_mm`` is imported (e.g. by
``custom_imports``).

Anything else is refused with :class:`UnsafeCheckpointError`, which names
the refused globals and the opt-in. There is no fall-back to
``weights_only=False``.

Opt-in for trusted files (e.g. official MixMIM checkpoints, which pickle
``argparse.Namespace`` under ``'args'``): name the extra globals, each as
``module.qualname``; they are added to the allow-list of our loads, still
with ``weights_only=True`` (so ``os``/``sys`` stay blocked by torch):

* environment variable, for any tool (mmpretrain / mmdet / mmseg train
  scripts included): ``MIXMAE_TRUSTED_GLOBALS=argparse.Namespace``
  (comma-separated list);
* in Python: :func:`trust_checkpoint_globals` (process-wide) or the
  context manager :func:`trusted_checkpoint_globals`;
* in a config run by ``tools/train.py``:
  ``trusted_checkpoint_globals = ['argparse.Namespace']``.
"""
import contextlib
import importlib
import os
import os.path as osp
import pickle
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mme_ckpt
from mmengine.runner.checkpoint import CheckpointLoader

#: Environment variable with extra trusted globals (comma-separated).
TRUSTED_GLOBALS_ENV = 'MIXMAE_TRUSTED_GLOBALS'

#: ``HistoryBuffer`` statistics that a pickle may look up by ``getattr``.
_HISTORY_BUFFER_STATS = ('min', 'max', 'mean', 'current')

#: numpy dtypes whose ``dtype`` objects may be rebuilt (BUILD checks the
#: concrete class, e.g. ``numpy.dtypes.Float64DType``).
_NUMERIC_DTYPES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8',
                   'f2', 'f4', 'f8')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles objects outside the allow-list."""


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Restricted stand-in for ``builtins.getattr`` during unpickling.

    ``HistoryBuffer.__getstate__`` stores ``_statistics_methods``, a dict of
    functions (``HistoryBuffer.min`` ...), which pickle writes as
    ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would
    let a pickle reach any attribute of any allowed object (e.g.
    ``getattr(getattr, '__self__')`` is the ``builtins`` module), and
    ``HistoryBuffer.__setstate__`` copies the result into a class-level dict
    that mmengine later calls. This only resolves the four default
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


def _numpy_reconstructors() -> List[Tuple[Callable, str]]:
    """numpy's array/scalar rebuild functions under the numpy 1.x and 2.x
    module names (pickles written with either load)."""
    from numpy.core import multiarray
    out = []
    for fn in (multiarray.scalar, multiarray._reconstruct):
        for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            out.append((fn, f'{mod}.{fn.__name__}'))
    return out


def _build_safe_globals() -> List[Any]:
    """The allow-list; see :data:`SAFE_GLOBALS`."""
    return [
        # numpy scalars (np.float64 ...) in meta / message_hub:
        # numpy.core.multiarray.scalar(dtype, bytes); and numpy arrays
        # (HistoryBuffer._log_history / _count_history):
        # numpy.core.multiarray._reconstruct(ndarray, shape, typecode)
        *_numpy_reconstructors(),
        # the class passed to _reconstruct, rebuilt with BUILD/__setstate__
        np.ndarray,
        # dtype objects: numpy.dtype(code, align, copy) + BUILD
        np.dtype,
        # ... whose BUILD checks the concrete dtype class
        # (numpy.dtypes.Float64DType ...); numeric dtypes only, no object
        # dtype
        *sorted({type(np.dtype(c)) for c in _NUMERIC_DTYPES}, key=str),
        # message_hub['log_scalars'] values (NEWOBJ + __setstate__)
        HistoryBuffer,
        # HistoryBuffer._statistics_methods: getattr(HistoryBuffer, 'min')
        # ..., resolved by a restricted getattr (see its docstring)
        (_history_buffer_getattr, 'builtins.getattr'),
        # collections.OrderedDict (message_hub, state_dict), torch tensors,
        # storages, dtypes and rebuild functions, builtins.set/complex/
        # bytearray and _codecs.encode are already in torch's own
        # weights_only allow-list.
    ]


#: Globals allowed on top of torch's ``weights_only`` defaults; exactly what
#: an mmengine 0.10.7 Runner checkpoint (meta, state_dict, message_hub,
#: optimizer, param_schedulers) holds, found by inspecting one with
#: ``torch.serialization.get_unsafe_globals_in_checkpoint``:
#: ``numpy.core.multiarray.scalar``, ``numpy.core.multiarray._reconstruct``,
#: ``numpy.ndarray``, ``numpy.dtype`` (+ the concrete numeric dtype classes
#: used by BUILD), ``mmengine.logging.history_buffer.HistoryBuffer`` and
#: ``builtins.getattr`` (restricted to ``HistoryBuffer.min/max/mean/
#: current``).
SAFE_GLOBALS: List[Any] = _build_safe_globals()

_trusted: Dict[str, Any] = {}


def _resolve_global(name: str) -> Any:
    """Import ``module.qualname`` (the longest importable module prefix)."""
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


def _entry(name: str) -> Tuple[Any, str]:
    return (_resolve_global(name), name)


def trust_checkpoint_globals(names: Iterable[str]) -> None:
    """Allow extra globals in every later checkpoint load of this process.

    Only for files you trust (e.g. official MixMIM checkpoints that pickle
    ``argparse.Namespace``). Loading stays ``weights_only=True``; the named
    globals are merely added to the allow-list.

    Args:
        names (Iterable[str]): Dotted names, e.g. ``['argparse.Namespace']``.
    """
    if isinstance(names, str):
        names = [names]
    for name in names:
        _trusted[name] = _entry(name)
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
            _trusted[name] = _entry(name)
        yield
    finally:
        _trusted.clear()
        _trusted.update(saved)


def _env_trusted() -> List[Tuple[Any, str]]:
    value = os.environ.get(TRUSTED_GLOBALS_ENV, '')
    return [_entry(n.strip()) for n in value.split(',') if n.strip()]


def allowed_globals() -> List[Any]:
    """Everything our loads allow beyond torch's defaults right now.

    Returns:
        list: :data:`SAFE_GLOBALS` plus the opted-in trusted globals.
    """
    return SAFE_GLOBALS + list(_trusted.values()) + _env_trusted()


@contextlib.contextmanager
def safe_load_context(source: str = 'checkpoint') -> Iterator[None]:
    """Allow :func:`allowed_globals` for ``torch.load`` inside the block and
    turn refusals into :class:`UnsafeCheckpointError`.

    Args:
        source (str): The file or URL, for the error message.

    Yields:
        None
    """
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            yield
        except pickle.UnpicklingError as e:
            if isinstance(e, UnsafeCheckpointError):
                raise
            raise UnsafeCheckpointError(_explain(source, e)) from None


_ALLOWED_NAMES_RE = re.compile(r'GLOBAL (\S+) (?:was not an allowed|whose)')


def _refused_globals(source: str, err: Exception) -> List[str]:
    """The globals in ``source`` that the allow-list refuses."""
    names: List[str] = []
    allowed = {
        (g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}')
        for g in allowed_globals()
    }
    if isinstance(source, str) and osp.isfile(source):
        try:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(
                source)
            names = [n for n in found if n not in allowed]
        except Exception:  # legacy (non-zip) format: parse the message
            names = []
    if not names:
        names = _ALLOWED_NAMES_RE.findall(str(err))
    return names


def _explain(source: str, err: Exception) -> str:
    detail = str(err)
    if 'WeightsUnpickler error:' in detail:
        detail = detail.split('WeightsUnpickler error:', 1)[1]
        detail = detail.split('Check the documentation')[0]
    detail = detail.strip()
    refused = _refused_globals(source, err)
    what = (f'it pickles {", ".join(refused)}, which '
            f'{"is" if len(refused) == 1 else "are"} not in the allow-list'
            if refused else 'the unpickler refused it')
    opt = ','.join(refused) if refused else 'module.Name'
    return (f'Refused to load checkpoint {source}: {what} of safe types '
            f'(mixmae_mm.engine.checkpoint.SAFE_GLOBALS, weights_only=True). '
            f'Unpickler said: {detail}\nIf you trust this file, allow exactly '
            f'these globals: set the environment variable '
            f'{TRUSTED_GLOBALS_ENV}={opt}, or call mixmae_mm.engine.'
            f'trust_checkpoint_globals({[opt]!r}), or add '
            f'trusted_checkpoint_globals={[opt]!r} to a config run by '
            f'tools/train.py. Loading never falls back to weights_only=False.')


def safe_torch_load(f: Any, map_location: Any = None) -> Any:
    """``torch.load(f, weights_only=True)`` with the allow-list.

    Args:
        f (str | file-like): What ``torch.load`` accepts.
        map_location: As in ``torch.load``.

    Returns:
        Any: The unpickled checkpoint.

    Raises:
        UnsafeCheckpointError: If the file pickles anything outside
            :func:`allowed_globals`; the message names the refused globals
            and the opt-in.
    """
    with safe_load_context(str(f) if isinstance(f, (str, os.PathLike))
                           else repr(f)):
        return torch.load(f, map_location=map_location, weights_only=True)


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file scheme, loading with :func:`safe_torch_load`.

    Args:
        filename (str): Local checkpoint path (``~`` expanded).
        map_location: As in ``torch.load``.

    Returns:
        dict | OrderedDict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def _wrap_scheme(loader: Callable) -> Callable:
    """Run an mmengine scheme loader inside :func:`safe_load_context`."""
    if getattr(loader, '_mixmae_safe', False):
        return loader

    def safe_loader(filename, map_location=None):
        with safe_load_context(filename):
            return loader(filename, map_location)

    safe_loader.__name__ = loader.__name__  # mmengine logs name[10:]
    safe_loader.__doc__ = loader.__doc__
    safe_loader._mixmae_safe = True
    return safe_loader


load_from_local._mixmae_safe = True


def register_safe_loaders() -> None:
    """Route every registered mmengine checkpoint scheme through the
    allow-list (idempotent; done on ``import mixmae_mm``)."""
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix == '':
            continue
        CheckpointLoader.register_scheme(
            prefixes=prefix, loader=_wrap_scheme(loader), force=True)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    # direct callers of mmengine.runner.checkpoint.load_from_local
    mme_ckpt.load_from_local = load_from_local


register_safe_loaders()

__all__ = [
    'SAFE_GLOBALS', 'TRUSTED_GLOBALS_ENV', 'UnsafeCheckpointError',
    'allowed_globals', 'apply_checkpoint_trust', 'load_from_local',
    'register_safe_loaders',
    'safe_load_context', 'safe_torch_load', 'trust_checkpoint_globals',
    'trusted_checkpoint_globals'
]


def apply_checkpoint_trust(cfg) -> None:
    """Honour the config's explicit opt-in for trusted checkpoints.

    ``trusted_checkpoint_globals = ['argparse.Namespace']`` adds these
    globals to the allow-list of every checkpoint load of this run (still
    ``weights_only=True``; see :mod:`mixmae_mm.engine.checkpoint`). The
    environment variable ``MIXMAE_TRUSTED_GLOBALS`` does the same for any
    tool.

    Args:
        cfg (mmengine.Config): The merged config.
    """
    trusted = cfg.get('trusted_checkpoint_globals', None)
    if trusted:
        trust_checkpoint_globals(
            [trusted] if isinstance(trusted, str) else list(trusted))
