# Copyright (c) OpenMMLab. All rights reserved.
"""Safe checkpoint loading for mmengine 0.10.7 on every supported torch
(2.1 to 2.15).

Why: mmengine's loaders call ``torch.load`` without an allow-list. Before
torch 2.6 that unpickles anything, so a checkpoint can run code; since 2.6
it means ``weights_only=True`` with torch's defaults only, which refuses
mmengine's own Runner checkpoints (numpy objects and a ``HistoryBuffer`` in
``message_hub``), so ``--resume``, ``load_from`` and
``init_cfg=dict(type='Pretrained', ...)`` break. torch's means to extend its
allow-list (``add_safe_globals`` 2.4, ``safe_globals`` 2.5,
``get_unsafe_globals_in_checkpoint`` 2.6) do not exist on torch 2.1, so this
module does not use them.

How: every load goes through :func:`safe_torch_load`, which calls
``torch.serialization.load(f, pickle_module=<restricted>,
weights_only=False)``. ``weights_only=False`` only makes torch use the given
pickle module (torch refuses ``pickle_module`` together with
``weights_only=True``); the restricted module's unpickler, the same on every
torch:

* resolves only the globals of an explicit allow-list,
  :data:`SAFE_GLOBALS` (exactly what an mmengine 0.10.7 Runner checkpoint
  and plain state dicts pickle) plus the opted-in trusted globals below;
  it returns the listed objects and never imports anything;
* resolves ``builtins.getattr`` to :func:`_history_buffer_getattr`, which
  only returns ``HistoryBuffer.min/max/mean/current``;
* refuses BUILD (``__setstate__`` / attribute update) on classes,
  functions and modules, which would let a pickle overwrite attributes of
  allowed classes and functions for the whole process. That needs the
  pure-Python ``pickle._Unpickler``; the C unpickler cannot restrict an
  opcode. torch's own ``weights_only`` unpickler is pure Python too.

Storages are resolved by torch's wrapper around the unpickler (names
containing ``Storage``), tensors by the allow-listed ``torch._utils``
rebuild functions. Sparse, quantized and nested tensor rebuilds are not
listed: torch validates sparse tensors only when ``weights_only=True``.

TorchScript archives (a zip with ``constants.pkl``) are refused before
``torch.load`` sees them, because ``torch.load`` hands them to
``torch.jit.load`` whatever ``pickle_module`` says. With the environment
variable ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, torch refuses every custom
pickle module, so loads stop with a ``RuntimeError`` that says so (unset it
for runs that load mmengine checkpoints; the loads stay restricted).
Refusals raise :class:`UnsafeCheckpointError`, which names every refused
global (found by scanning the pickle with ``pickletools``, nothing is
executed) and the opt-ins. Nothing ever falls back to an unrestricted
unpickler.

Where: importing this module (``import mixmae_mm`` does) re-registers
mmengine's checkpoint schemes:

* ``''`` (local files): :func:`load_from_local`, which replaces mmengine's
  loader of the same name (also rebound as
  ``mmengine.runner.checkpoint.load_from_local``). The empty prefix is the
  fall-back scheme: ``CheckpointLoader._get_checkpoint_loader`` tries the
  registered prefixes as regular expressions in reverse lexicographic order,
  and ``''`` sorts last, so every path that matches no URL scheme is local.
* every other scheme registered at import time (``http(s)://``,
  ``torchvision://``, ``open-mmlab://``, ``mmcls://``, ``pavi://``,
  ``s3://``...): mmengine's loader runs inside :func:`safe_load_context`,
  in which ``torch.load`` calls of the same thread (mmengine's and
  ``torch.hub.load_state_dict_from_url``'s, which passes
  ``weights_only=False``) go through :func:`safe_torch_load`. For this,
  ``torch.load`` is replaced, on first use of the context, by a dispatcher
  that calls the original unless the calling thread is inside the context
  (loaders that bound ``from torch import load`` earlier are not covered;
  mmengine's and ``torch.hub``'s look ``torch.load`` up at call time).

All of ``Runner.resume``, ``Runner.load_checkpoint`` (``load_from``),
``mmengine.runner.load_checkpoint`` (``init_cfg`` ``Pretrained``, with or
without ``prefix=``) and mmdet / mmseg backbones that call
``CheckpointLoader`` or ``_load_checkpoint`` pass through these schemes,
whatever the registry scope, as soon as ``mixmae_mm`` is imported (e.g. by
``custom_imports``).

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
import _compat_pickle
import collections
import contextlib
import copyreg
import functools
import importlib
import inspect
import io
import os
import os.path as osp
import pickle
import pickletools
import threading
import types
import zipfile
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional)

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mme_ckpt
from mmengine.runner.checkpoint import CheckpointLoader

#: Environment variable with extra trusted globals (comma-separated).
TRUSTED_GLOBALS_ENV = 'MIXMAE_TRUSTED_GLOBALS'

#: torch's switch that forces ``weights_only=True`` on every ``torch.load``
#: (and so refuses any ``pickle_module``); torch >= 1.13 reads it.
_FORCE_WEIGHTS_ONLY_ENV = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'

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

#: The first bytes of a zip file: what ``torch.load`` checks to choose its
#: zip reader (and, for TorchScript, ``torch.jit.load``).
_ZIP_MAGIC = b'PK\x03\x04'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles objects outside the allow-list (or is a
    TorchScript archive, which would run code)."""


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


def _canonical(module: str, name: str, fix_imports: bool) -> str:
    """``module.name`` as our allow-list spells it: Python 2 names of
    protocol < 3 pickles mapped as ``pickle`` does (``__builtin__.set`` is
    ``builtins.set``), and torch's renamed ``torch.tensor`` module."""
    if fix_imports:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    if module == 'torch.tensor':
        module = 'torch._tensor'
    return f'{module}.{name}'


def _is_global_or_code(obj: Any) -> bool:
    """Classes, functions and modules: never the target of BUILD."""
    return isinstance(obj, (type, types.ModuleType)) or inspect.isroutine(obj)


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves only :attr:`allowed` (see the module
    docstring). Subclassed per load with that load's allow-list."""

    #: ``{'module.qualname': object}`` of this load.
    allowed: Mapping[str, Any] = SAFE_GLOBALS
    #: Collects the names that :meth:`find_class` refused, in order (for
    #: the message); ``None``: not collected.
    refused: Optional[List[str]] = None

    def find_class(self, module: str, name: str) -> Any:
        key = _canonical(module, name, self.proto < 3 and self.fix_imports)
        try:
            return self.allowed[key]
        except KeyError:
            if self.refused is not None and key not in self.refused:
                self.refused.append(key)
            raise pickle.UnpicklingError(
                f'global {key} is not in the allow-list') from None

    def _load_build(self) -> None:
        """BUILD on an instance of an allowed class only: on a class,
        function or module it would set attributes for the whole process
        (e.g. replace ``HistoryBuffer.mean``)."""
        target = self.stack[-2] if len(self.stack) > 1 else None
        if _is_global_or_code(target):
            raise pickle.UnpicklingError(
                f'setting the state of {target!r} is not allowed: BUILD only '
                f'applies to instances')
        pickle._Unpickler.load_build(self)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build


def _restricted_pickle_module(allowed: Mapping[str, Any],
                              refused: List[str]) -> types.ModuleType:
    """A module-like object for ``torch.load(pickle_module=...)``: torch
    subclasses its ``Unpickler`` (to resolve storages) and calls its
    ``load`` for the header pickles of the legacy format."""
    unpickler = type('Unpickler', (_RestrictedUnpickler, ),
                     dict(allowed=allowed, refused=refused))
    module = types.ModuleType('mixmae_mm_restricted_pickle')
    module.Unpickler = unpickler
    module.UnpicklingError = pickle.UnpicklingError
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    module.loads = lambda data, **kwargs: unpickler(
        io.BytesIO(data), **kwargs).load()
    return module


def _zip_names(fobj: io.IOBase) -> Optional[List[str]]:
    """The member names of a zip checkpoint, ``None`` if ``torch.load``
    would not read ``fobj`` as a zip; the position is kept."""
    start = fobj.tell()
    try:
        if fobj.read(4) != _ZIP_MAGIC:
            return None
        fobj.seek(start)
        try:
            with zipfile.ZipFile(fobj) as archive:
                return archive.namelist()
        except zipfile.BadZipFile:
            return []  # torch.load will refuse it; nothing to scan
    finally:
        fobj.seek(start)


def _is_torchscript(fobj: io.IOBase, names: Optional[List[str]]) -> bool:
    """Whether ``torch.load`` would hand ``fobj`` to ``torch.jit.load``.

    torch decides with its own zip reader (``constants.pkl`` among the
    records); we ask Python's zip reader and, where torch's private helpers
    exist (torch 1.6 to 2.15 at least), torch's, so that the two readers
    cannot disagree in the attacker's favour.
    """
    if names is None:
        return False
    if any(n.rsplit('/', 1)[-1] == 'constants.pkl' for n in names):
        return True
    ser = torch.serialization
    if not (hasattr(ser, '_open_zipfile_reader')
            and hasattr(ser, '_is_torchscript_zip')):
        return not names  # unreadable by Python, unknown to us: refuse
    start = fobj.tell()
    try:
        with ser._open_zipfile_reader(fobj) as reader:
            return ser._is_torchscript_zip(reader)
    except RuntimeError:
        return False  # torch cannot read it either: torch.load will fail
    finally:
        fobj.seek(start)


#: pickletools opcodes that push a str (the operands of STACK_GLOBAL).
_STRING_OPS = frozenset(('STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE',
                         'BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8'))


def _globals_in_pickle(stream: io.IOBase) -> Iterator[str]:
    """The globals one pickle names, read with ``pickletools`` (nothing is
    executed). ``STACK_GLOBAL`` takes its names from the two strings pushed
    before it, directly or from the memo."""
    proto = 0
    memo: Dict[int, Any] = {}
    recent: List[Any] = []  # the last values pushed: str or None
    for op, arg, _ in pickletools.genops(stream):
        kind = op.name
        if kind == 'PROTO':
            proto = arg
        elif kind in ('GLOBAL', 'INST'):
            module, name = arg.split(' ', 1)
            yield _canonical(module, name, proto < 3)
            recent.append(None)
        elif kind == 'STACK_GLOBAL':
            name = recent.pop() if recent else None
            module = recent.pop() if recent else None
            if isinstance(module, str) and isinstance(name, str):
                yield _canonical(module, name, False)
            recent.append(None)
        elif kind in ('EXT1', 'EXT2', 'EXT4'):
            key = copyreg._inverted_registry.get(arg)
            if key:
                yield _canonical(*key, proto < 3)
            recent.append(None)
        elif kind == 'MEMOIZE':
            memo[len(memo)] = recent[-1] if recent else None
        elif kind in ('PUT', 'BINPUT', 'LONG_BINPUT'):
            memo[arg] = recent[-1] if recent else None
        elif kind in ('GET', 'BINGET', 'LONG_BINGET'):
            recent.append(memo.get(arg))
        elif kind in _STRING_OPS:
            recent.append(arg)
        elif op.stack_after:
            recent.append(None)
        del recent[:-2]


def _pickles_of(fobj: io.IOBase,
                names: Optional[List[str]]) -> Iterator[io.IOBase]:
    """The pickles ``torch.load`` would unpickle: ``data.pkl`` of a zip
    checkpoint, or the four leading pickles of the legacy format (magic
    number, protocol, system info, the object)."""
    if names is not None:
        with zipfile.ZipFile(fobj) as archive:
            for name in names:
                if name.count('/') == 1 and name.endswith('/data.pkl'):
                    yield io.BytesIO(archive.read(name))
        return
    for _ in range(4):
        yield fobj


def _refused_in(fobj: io.IOBase, allowed: Mapping[str, Any]) -> List[str]:
    """Every global of the checkpoint that ``allowed`` refuses, in order."""
    start = fobj.tell()
    refused: List[str] = []
    try:
        names = _zip_names(fobj)
        for stream in _pickles_of(fobj, names):
            for key in _globals_in_pickle(stream):
                qualname = key.rsplit('.', 1)[-1]
                # storages are resolved by torch's unpickler wrapper
                by_torch = 'Storage' in qualname and hasattr(torch, qualname)
                if key not in allowed and not by_torch \
                        and key not in refused:
                    refused.append(key)
    except Exception:  # a damaged file: report what find_class saw
        pass
    finally:
        fobj.seek(start)
    return refused


def _explain(source: str, err: Exception, refused: List[str]) -> str:
    """The refusal message: what was refused, and the opt-ins."""
    detail = str(err).strip()
    if refused:
        what = (f'it pickles {", ".join(refused)}, which '
                f'{"is" if len(refused) == 1 else "are"} not in the '
                f'allow-list of safe types')
        opt = ','.join(refused)
        how = (f'If you trust this file, allow exactly these globals: set '
               f'the environment variable {TRUSTED_GLOBALS_ENV}={opt}, or '
               f'call mixmae_mm.engine.trust_checkpoint_globals({[opt]!r}), '
               f'or add trusted_checkpoint_globals={[opt]!r} to a config run '
               f'by tools/train.py.')
    else:
        what = 'the restricted unpickler refused it'
        how = (f'No opt-in ({TRUSTED_GLOBALS_ENV}, '
               f'trust_checkpoint_globals, trusted_checkpoint_globals) '
               f'allows this: only globals can be trusted.')
    return (f'Refused to load checkpoint {source}: {what} '
            f'(mixmae_mm.engine.checkpoint.SAFE_GLOBALS, restricted '
            f'unpickler). Unpickler said: {detail}\n{how} Loading never '
            f'falls back to weights_only=False (unrestricted unpickling).')


def _check_not_forced_weights_only(source: str) -> None:
    """torch refuses ``pickle_module`` when this variable forces
    ``weights_only=True``; say why instead of torch's bare message."""
    value = os.environ.get(_FORCE_WEIGHTS_ONLY_ENV, '0').lower()
    if value in ('1', 'y', 'yes', 'true'):
        raise RuntimeError(
            f'Cannot load checkpoint {source}: {_FORCE_WEIGHTS_ONLY_ENV}='
            f'{os.environ[_FORCE_WEIGHTS_ONLY_ENV]} makes torch.load refuse '
            f'any custom pickle_module, including the restricted unpickler '
            f'mixmae_mm loads checkpoints with (an explicit allow-list, see '
            f'mixmae_mm.engine.checkpoint). Unset {_FORCE_WEIGHTS_ONLY_ENV} '
            f'for this run; the loads stay restricted.')


def _load_file(fobj: io.IOBase, source: str, map_location: Any,
               pickle_load_args: Dict[str, Any]) -> Any:
    """Restricted ``torch.load`` of an open, seekable binary file."""
    _check_not_forced_weights_only(source)
    names = _zip_names(fobj)
    if _is_torchscript(fobj, names):
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {source}: it is a TorchScript '
            f'archive (constants.pkl), which torch.load hands to '
            f'torch.jit.load, running its code, instead of the restricted '
            f'unpickler. If you trust it, load it with torch.jit.load '
            f'yourself. Loading never falls back to weights_only=False '
            f'(unrestricted unpickling).')
    allowed = allowed_globals()
    refused: List[str] = []
    start = fobj.tell()
    try:
        return torch.serialization.load(
            fobj,
            map_location=map_location,
            pickle_module=_restricted_pickle_module(allowed, refused),
            weights_only=False,
            **pickle_load_args)
    except UnsafeCheckpointError:
        raise
    except pickle.UnpicklingError as err:
        fobj.seek(start)
        names = _refused_in(fobj, allowed)
        names += [n for n in refused if n not in names]
        raise UnsafeCheckpointError(_explain(source, err, names)) from None


def _restricted_load(f: Any, map_location: Any, source: Optional[str],
                     pickle_load_args: Dict[str, Any]) -> Any:
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as fobj:  # opened once: checked = loaded
            return _load_file(fobj, source or os.fspath(f), map_location,
                              pickle_load_args)
    if not (hasattr(f, 'seek') and hasattr(f, 'tell')):
        f = io.BytesIO(f.read())  # e.g. a stream; torch needs seek too
    return _load_file(f, source or repr(f), map_location, pickle_load_args)


def safe_torch_load(f: Any, map_location: Any = None) -> Any:
    """``torch.load(f)`` with the restricted unpickler and the allow-list.

    Args:
        f (str | os.PathLike | file-like): A path or a binary file.
        map_location: As in ``torch.load``.

    Returns:
        Any: The unpickled checkpoint.

    Raises:
        UnsafeCheckpointError: If the file pickles anything outside
            :func:`allowed_globals` or is a TorchScript archive; the message
            names the refused globals and the opt-in.
        RuntimeError: If ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` is set (torch
            then refuses any custom unpickler).
    """
    return _restricted_load(f, map_location, None, {})


# ---------------------------------------------------------------------------
# torch.load calls inside mmengine's other schemes


_local = threading.local()
_install_lock = threading.Lock()


def _context_sources() -> List[str]:
    if not hasattr(_local, 'sources'):
        _local.sources = []
    return _local.sources


def _torch_load_in_context(f: Any,
                           map_location: Any = None,
                           pickle_module: Any = None,
                           *,
                           weights_only: Any = None,
                           mmap: Any = None,
                           **pickle_load_args: Any) -> Any:
    """What ``torch.load`` does inside :func:`safe_load_context`.

    ``pickle_module``, ``weights_only`` and ``mmap`` are ignored: the load
    is restricted whatever the caller asked (``torch.hub`` passes
    ``weights_only=False``), and it reads an open file, which mmap cannot.
    """
    source = _context_sources()[-1]
    if isinstance(f, (str, os.PathLike)) and os.fspath(f) != source:
        source = f'{source} (file {os.fspath(f)})'
    return _restricted_load(f, map_location, source, pickle_load_args)


def _install_torch_load_dispatch() -> None:
    """Replace ``torch.load`` by a dispatcher that restricts the calls made
    inside :func:`safe_load_context` by the same thread and passes every
    other call to the ``torch.load`` it replaced. (Installed once; a later
    replacement of ``torch.load`` by someone else is wrapped again.)"""
    with _install_lock:
        current = torch.load
        if getattr(current, '_mixmae_dispatch', False):
            return

        @functools.wraps(current)
        def load(*args, **kwargs):
            if _context_sources():
                return _torch_load_in_context(*args, **kwargs)
            return current(*args, **kwargs)

        load._mixmae_dispatch = True
        torch.load = load


@contextlib.contextmanager
def safe_load_context(source: str = 'checkpoint') -> Iterator[None]:
    """Restrict ``torch.load`` calls of this thread inside the block to the
    allow-list and turn refusals into :class:`UnsafeCheckpointError`.

    Calls from other threads are not affected.

    Args:
        source (str): The file or URL, for the error message.

    Yields:
        None
    """
    _install_torch_load_dispatch()
    sources = _context_sources()
    sources.append(str(source))
    try:
        yield
    except pickle.UnpicklingError as e:
        if isinstance(e, UnsafeCheckpointError):
            raise
        raise UnsafeCheckpointError(_explain(source, e, [])) from None
    finally:
        sources.pop()


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


def apply_checkpoint_trust(cfg) -> None:
    """Honour the config's explicit opt-in for trusted checkpoints.

    ``trusted_checkpoint_globals = ['argparse.Namespace']`` adds these
    globals to the allow-list of every checkpoint load of this run (the
    loads stay restricted; see :mod:`mixmae_mm.engine.checkpoint`). The
    environment variable ``MIXMAE_TRUSTED_GLOBALS`` does the same for any
    tool.

    Args:
        cfg (mmengine.Config): The merged config.
    """
    trusted = cfg.get('trusted_checkpoint_globals', None)
    if trusted:
        trust_checkpoint_globals(
            [trusted] if isinstance(trusted, str) else list(trusted))


__all__ = [
    'SAFE_GLOBALS', 'TRUSTED_GLOBALS_ENV', 'UnsafeCheckpointError',
    'allowed_globals', 'apply_checkpoint_trust', 'load_from_local',
    'register_safe_loaders', 'safe_load_context', 'safe_torch_load',
    'trust_checkpoint_globals', 'trusted_checkpoint_globals'
]
