# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""What checkpoint loads may unpickle: the allow-list, the arguments each
allowed callable accepts, and the opt-ins.

The restricted unpickler (:mod:`mixmae_mm.engine.safe_unpickler`) resolves
only the globals of :func:`allowed_globals`: :data:`SAFE_GLOBALS` (exactly
what an mmengine 0.10.7 Runner checkpoint and plain state dicts pickle, on
torch 2.1 to 2.15 and numpy 1.x / 2.x) plus the opted-in trusted globals
below. It returns the listed objects and never imports anything.

A name is not enough: ``numpy.ndarray((1,), numpy.dtype('O'), b'A' * 8)``
names two allowed globals and makes an object array of wild pointers. So
the unpickler calls an allowed callable only through its entry in
:data:`CALL_CHECKS`, which checks the arguments (types, numeric dtypes,
bounds) and builds the object itself; classes such as ``numpy.ndarray``,
``torch.Tensor`` or ``HistoryBuffer`` are only arguments or (for
``HistoryBuffer``) rebuilt by :func:`new_history_buffer`, and a state
(``BUILD``) is applied only as :func:`build_check_for` says, to the
objects the checks made. ``builtins.getattr`` resolves to
:func:`_history_buffer_getattr`, which only returns
``HistoryBuffer.min/max/mean/current``.

Opt-in for trusted files (e.g. official MixMIM checkpoints, which pickle
``argparse.Namespace`` under ``'args'``): name the extra globals, each as
``module.qualname``; they are added to the allow-list of our loads, which
stay restricted (globals of ``os``, ``sys``, ``subprocess``, ``importlib``
and the like and code-running builtins cannot be trusted, also not through
an alias such as ``shutil.os.system``). Trusted callables are called with
any arguments: that is what trusting means.

* environment variable, for any tool (mmpretrain / mmdet / mmseg train
  scripts included): ``MIXMAE_TRUSTED_GLOBALS=argparse.Namespace``
  (comma-separated list);
* in Python: :func:`trust_checkpoint_globals` (process-wide) or the
  context manager :func:`trusted_checkpoint_globals`;
* in a config run by ``tools/train.py``:
  ``trusted_checkpoint_globals = ['argparse.Namespace']``.
"""
import _codecs
import builtins
import collections
import contextlib
import importlib
import math
import os
import pickle
import types
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer

#: Environment variable with extra trusted globals (comma-separated).
TRUSTED_GLOBALS_ENV = 'MIXMAE_TRUSTED_GLOBALS'

#: ``HistoryBuffer`` statistics that a pickle may look up by ``getattr``.
_HISTORY_BUFFER_STATS = ('min', 'max', 'mean', 'current')

#: The numeric numpy dtype codes numpy pickles (``np.dtype('f8', False,
#: True)``): bool, int, uint, float and complex of every size.
_NUMERIC_DTYPES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2',
                   'f4', 'f8', 'f12', 'f16', 'c8', 'c16', 'c24', 'c32')

#: Modules and globals that no opt-in can add: they run code, import or
#: touch the system (torch's ``weights_only`` blocks the first five).
_NEVER_TRUSTED_MODULES = ('os', 'posix', 'nt', 'sys', 'subprocess',
                          'importlib', 'runpy', 'ctypes', 'pickle', '_pickle',
                          'marshal', 'shutil', 'pty', 'code', 'codeop',
                          'socket', 'posixpath', 'ntpath', 'io', '_io')
_NEVER_TRUSTED = ('builtins.eval', 'builtins.exec', 'builtins.compile',
                  'builtins.__import__', 'builtins.open', 'builtins.getattr',
                  'builtins.setattr', 'builtins.delattr', 'builtins.globals',
                  'builtins.vars', 'builtins.breakpoint', 'builtins.input',
                  'builtins.memoryview', 'builtins.type', 'builtins.object')

#: Bounds of sizes, strides and offsets: no real tensor has more, and the
#: products below stay exact Python ints far from any C overflow.
_MAX_DIMS = 64
_MAX_INT = 2**62


class RefusedArgumentsError(pickle.UnpicklingError):
    """An allowed callable was given arguments it may not receive (or a
    state that may not be applied)."""


def _describe(value: Any) -> str:
    """A short description of an unpickled value for messages; never the
    ``repr`` of an arbitrary object (a deep or huge one would recurse or
    take long)."""
    if value is None or type(value) in (bool, int, float, complex):
        text = repr(value)
    elif type(value) in (str, bytes):
        text = repr(value[:40]) + ('...' if len(value) > 40 else '')
    elif type(value) is tuple and len(value) <= 8:
        return '(' + ', '.join(_describe(v) for v in value) + ',)'
    else:
        name = getattr(value, '__qualname__', None)
        return (name if isinstance(name, str) and isinstance(
            value, (type, types.FunctionType, types.BuiltinFunctionType)) else
                f'<{type(value).__name__}>')
    return text[:80]


def _refuse(what: str) -> None:
    raise RefusedArgumentsError(what)


def _int(value: Any, what: str, low: int = 0) -> int:
    """``value`` if it is an int in ``[low, 2**62)`` (bool excluded)."""
    if type(value) is not int or not low <= value < _MAX_INT:
        _refuse(f'{what} must be an int in [{low}, 2**62), got '
                f'{_describe(value)}')
    return value


def _ints(values: Any, what: str) -> Tuple[int, ...]:
    """A tuple of at most 64 non-negative ints (a tuple, list or
    ``torch.Size``)."""
    if type(values) not in (tuple, list, torch.Size) or \
            len(values) > _MAX_DIMS:
        _refuse(f'{what} must be a tuple of at most {_MAX_DIMS} ints, got '
                f'{_describe(values)}')
    return tuple(_int(v, what) for v in values)


def _numel(size: Tuple[int, ...], what: str) -> int:
    numel = math.prod(size)
    if numel >= _MAX_INT:
        _refuse(f'{what} {size} has 2**62 or more elements')
    return numel


def _empty_hooks(hooks: Any) -> None:
    # torch pickles the (always empty) _backward_hooks dict; hooks would be
    # callables run at backward time
    if type(hooks) not in (dict, collections.OrderedDict) or hooks:
        _refuse(f'backward hooks must be an empty dict, got '
                f'{_describe(hooks)}')


def _bool(value: Any, what: str) -> bool:
    if type(value) is not bool:
        _refuse(f'{what} must be a bool, got {_describe(value)}')
    return value


# ---------------------------------------------------------------- numpy


def is_numeric_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` is a plain numeric numpy dtype: bool, int, uint,
    float or complex, no fields, no sub-array, no object."""
    return (isinstance(dtype, np.dtype) and dtype.kind in 'biufc'
            and dtype.fields is None and dtype.subdtype is None
            and not dtype.hasobject and dtype.itemsize > 0)


def _numeric_dtype_arg(dtype: Any, what: str) -> np.dtype:
    if not is_numeric_dtype(dtype):
        _refuse(f'{what} must be a numeric numpy dtype (bool, int, uint, '
                f'float, complex), got {_describe(dtype)}' +
                (f' {dtype!s}' if isinstance(dtype, np.dtype) else ''))
    return dtype


def _make_dtype(cls: type) -> Callable:
    """The check of ``numpy.dtype(code, align, copy)`` (and of numpy >=
    1.25's concrete ``numpy.dtypes.Float64DType``...): numeric codes only,
    always a copy, so that the ``BUILD`` that follows (the byte order)
    cannot change numpy's shared builtin descriptor."""

    def dtype(code, align=False, copy=True):
        if type(code) is not str or code not in _NUMERIC_DTYPES:
            _refuse(f'numpy.dtype({_describe(code)}) is not allowed: only '
                    f'the numeric codes {", ".join(_NUMERIC_DTYPES)}')
        if type(align) not in (bool, int) or align != 0 or \
                type(copy) not in (bool, int) or copy != 1:
            _refuse(f'numpy.dtype({code!r}, align={_describe(align)}, '
                    f'copy={_describe(copy)}): only align=False, copy=True')
        out = np.dtype(code, False, True)
        if cls is not np.dtype and type(out) is not cls:
            _refuse(f'{cls.__qualname__}({code!r}) is not allowed: the code '
                    f'is a {type(out).__qualname__}')
        return out

    return dtype


def _strict_equal(a: Any, b: Any) -> bool:
    """``a == b`` for the plain tuples of numpy's pickled states, without
    calling ``__eq__`` of anything else."""
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(map(_strict_equal, a, b))
    if a is None or type(a) in (bool, int, str, bytes):
        return a == b
    return False


def _build_dtype(dtype: np.dtype, state: Any) -> None:
    """``BUILD`` of a dtype made by :func:`_make_dtype`: only the state
    numpy writes for that dtype in some byte order."""
    for order in '<>|=':
        expected = dtype.newbyteorder(order).__reduce__()[2]
        if _strict_equal(state, expected):
            dtype.__setstate__(state)
            return
    _refuse(f'the state {_describe(state)} of numpy.dtype({dtype.str!r}) '
            f'is not one numpy writes (only the byte order may differ)')


def _reconstruct(subtype, shape, dtype_code):
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``, the
    empty array that the ``BUILD`` after it fills: only these arguments
    (numpy writes no others)."""
    if subtype is not np.ndarray or not _strict_equal(shape, (0, )) or \
            not _strict_equal(dtype_code, b'b'):
        _refuse(f'numpy _reconstruct{_describe((subtype, shape, dtype_code))}'
                f' is not allowed: only (numpy.ndarray, (0,), b"b")')
    return _NUMPY_RECONSTRUCT(np.ndarray, (0, ), b'b')


def _build_ndarray(array: np.ndarray, state: Any) -> None:
    """``BUILD`` of an array made by :func:`_reconstruct`:
    ``(version, shape, numeric dtype, is_fortran, raw bytes)`` with exactly
    as many bytes as the shape needs."""
    if type(state) is not tuple or len(state) not in (4, 5):
        _refuse(f'numpy array state must be a 4- or 5-tuple, got '
                f'{_describe(state)}')
    if len(state) == 5 and (type(state[0]) is not int or state[0] != 1):
        _refuse(f'numpy array state version must be 1, got '
                f'{_describe(state[0])}')
    shape, dtype, fortran, raw = state[-4:]
    shape = _ints(shape, 'numpy array shape')
    _numeric_dtype_arg(dtype, 'numpy array dtype')
    _bool(fortran, 'numpy array is_fortran')
    need = _numel(shape, 'numpy array shape') * dtype.itemsize
    if type(raw) is not bytes or len(raw) != need:
        _refuse(f'numpy array data must be {need} bytes for shape {shape} '
                f'and dtype {dtype.str}, got {_describe(raw)} '
                f'({len(raw) if type(raw) is bytes else "not bytes"})')
    array.__setstate__(state)


def _scalar(dtype, data):
    """``numpy.core.multiarray.scalar(dtype, bytes)``: numeric dtypes and
    exactly ``itemsize`` bytes (with an object dtype it returns any object
    it is given)."""
    _numeric_dtype_arg(dtype, 'numpy scalar dtype')
    if type(data) is not bytes or len(data) != dtype.itemsize:
        _refuse(f'numpy scalar of dtype {dtype.str} needs {dtype.itemsize} '
                f'bytes, got {_describe(data)}')
    return _NUMPY_SCALAR(dtype, data)


def _numpy_functions() -> Tuple[Callable, Callable]:
    """numpy's own ``scalar`` and ``_reconstruct``, taken from what numpy
    pickles (no import of the deprecated ``numpy.core`` on numpy 2)."""
    return (np.float64(0).__reduce__()[0], np.zeros(1).__reduce__()[0])


_NUMPY_SCALAR, _NUMPY_RECONSTRUCT = _numpy_functions()


def _numpy_globals() -> Dict[str, Any]:
    """numpy's array/scalar rebuild functions under the numpy 1.x and 2.x
    module names, so that files written with either load; ``ndarray``,
    ``dtype`` and the numeric dtype classes."""
    out: Dict[str, Any] = {}
    for fn in (_NUMPY_SCALAR, _NUMPY_RECONSTRUCT):
        for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            out[f'{mod}.{fn.__name__}'] = fn
    out['numpy.ndarray'] = np.ndarray
    out['numpy.dtype'] = np.dtype
    # numpy >= 1.25 names the concrete classes (numpy.dtypes.Float64DType);
    # before, they are not importable and no pickle names them
    for code in _NUMERIC_DTYPES:
        try:
            cls = type(np.dtype(code))
        except TypeError:  # f12 / c24 exist on 32-bit platforms only
            continue
        if cls is not np.dtype:
            out[f'{cls.__module__}.{cls.__qualname__}'] = cls
    return out


# ---------------------------------------------------------------- torch


def _typed_storage(storage: Any) -> torch.storage.TypedStorage:
    # what torch's persistent_load returns for ('storage', ...) ids
    if type(storage) is not torch.storage.TypedStorage:
        _refuse(f'a tensor must be rebuilt from a storage of the file, got '
                f'{_describe(storage)}')
    return storage


def _check_view(nbytes: int, itemsize: int, offset: Any, size: Any,
                stride: Any) -> None:
    """Sizes, strides and offset of a tensor view that stays inside its
    storage of ``nbytes`` bytes (torch 2.1 checks the same, later torch
    does; computed here in exact ints before torch sees them)."""
    offset = _int(offset, 'tensor storage offset')
    size = _ints(size, 'tensor size')
    stride = _ints(stride, 'tensor stride')
    if len(size) != len(stride):
        _refuse(f'tensor size {size} and stride {stride} differ in length')
    numel = _numel(size, 'tensor size')
    # the last element a view reaches, plus one
    extent = offset + (
        sum((n - 1) * s for n, s in zip(size, stride)) + 1 if numel else 0)
    if extent * itemsize > nbytes:
        _refuse(f'tensor view (offset {offset}, size {size}, stride '
                f'{stride}, {itemsize}-byte elements) reaches byte '
                f'{extent * itemsize} of a {nbytes}-byte storage')


def _tensor_metadata(metadata: Any) -> None:
    if metadata is not None and (type(metadata) is not dict or any(
            type(k) is not str or type(v) is not bool
            for k, v in metadata.items())):
        _refuse(f'tensor metadata must be a dict of flags, got '
                f'{_describe(metadata)}')


def _checked_storage(storage: Any, dtype: Any, offset: Any, size: Any,
                     stride: Any) -> None:
    """A storage of the file and a view of it with elements of ``dtype``
    (the storage's own if ``None``) that stays inside it."""
    _typed_storage(storage)
    if dtype is None:
        dtype = storage.dtype
    if not isinstance(dtype, torch.dtype):
        _refuse(f'tensor dtype must be a torch.dtype, got {_describe(dtype)}')
    _check_view(storage._untyped_storage.nbytes(),
                torch._utils._element_size(dtype), offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    _checked_storage(storage, None, storage_offset, size, stride)
    return torch._utils._rebuild_tensor(storage, storage_offset, tuple(size),
                                        tuple(stride))


def _rebuild_tensor_v2(storage,
                       storage_offset,
                       size,
                       stride,
                       requires_grad,
                       backward_hooks,
                       metadata=None):
    _checked_storage(storage, None, storage_offset, size, stride)
    _bool(requires_grad, 'requires_grad')
    _empty_hooks(backward_hooks)
    _tensor_metadata(metadata)
    return torch._utils._rebuild_tensor_v2(storage,
                                           storage_offset, tuple(size),
                                           tuple(stride), requires_grad,
                                           backward_hooks, metadata)


def _rebuild_tensor_v3(storage,
                       storage_offset,
                       size,
                       stride,
                       requires_grad,
                       backward_hooks,
                       dtype,
                       metadata=None):
    _checked_storage(storage, dtype, storage_offset, size, stride)
    _bool(requires_grad, 'requires_grad')
    _empty_hooks(backward_hooks)
    _tensor_metadata(metadata)
    return torch._utils._rebuild_tensor_v3(storage,
                                           storage_offset, tuple(size),
                                           tuple(stride), requires_grad,
                                           backward_hooks, dtype, metadata)


def _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad):
    if not isinstance(dtype, torch.dtype):
        _refuse(f'tensor dtype must be a torch.dtype, got {_describe(dtype)}')
    size, stride = _ints(size, 'tensor size'), _ints(stride, 'tensor stride')
    if len(size) != len(stride):
        _refuse(f'tensor size {size} and stride {stride} differ in length')
    _numel(size, 'tensor size')
    return torch._utils._rebuild_meta_tensor_no_storage(
        dtype, size, stride, _bool(requires_grad, 'requires_grad'))


def _set_state(obj: Any, state: Any) -> Any:
    """Apply a pickled ``__dict__`` (or ``(dict, slots)``) to a tensor or
    a trusted object: new plain attributes only, none that the class
    defines (``data``, ``grad``, ``_backward_hooks``...) and no
    ``__dunder__`` (``__class__``, ``__array_interface__``...)."""
    parts = state if type(state) is tuple else (state, )
    if len(parts) > 2:
        _refuse(f'object state must be a dict or (dict, slots), got '
                f'{_describe(state)}')
    for part in parts:
        if part is None:
            continue
        if type(part) is not dict:
            _refuse(f'object state must be a dict, got {_describe(part)}')
        for key in part:
            if type(key) is not str or not key.isidentifier() or \
                    key.startswith('__') or hasattr(type(obj), key):
                _refuse(f'setting the attribute {_describe(key)} of a '
                        f'{type(obj).__name__} is not allowed (only new, '
                        f'non-dunder attributes)')
        for key, value in part.items():
            setattr(obj, key, value)
    return obj


def _rebuild_parameter(data, requires_grad, backward_hooks):
    if type(data) is not torch.Tensor:
        _refuse(f'a Parameter wraps a tensor, got {_describe(data)}')
    _empty_hooks(backward_hooks)
    return torch.nn.Parameter(data, _bool(requires_grad, 'requires_grad'))


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return _set_state(
        _rebuild_parameter(data, requires_grad, backward_hooks), state)


def _rebuild_from_type_v2(func, new_type, args, state):
    """A tensor of type ``new_type`` (``Tensor`` or ``Parameter``) with
    attributes: ``func`` must be one of the tensor rebuilds above, called
    through its check."""
    check = _TENSOR_REBUILDS.get(id(func))
    if check is None or check[0] is not func:
        _refuse(f'_rebuild_from_type_v2 may only call a tensor rebuild '
                f'function, got {_describe(func)}')
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        _refuse(f'_rebuild_from_type_v2 may only make a Tensor or Parameter, '
                f'got {_describe(new_type)}')
    if type(args) is not tuple:
        _refuse(f'_rebuild_from_type_v2 arguments must be a tuple, got '
                f'{_describe(args)}')
    ret = check[1](*args)
    if type(ret) is not new_type:
        ret = ret.as_subclass(new_type)
    return _set_state(ret, state)


def _torch_rebuilds() -> Dict[str, Tuple[Callable, Callable]]:
    """``{'torch._utils.<name>': (torch's function, its check)}``
    (``_rebuild_tensor_v3``: not in torch 2.1)."""
    checks = dict(
        _rebuild_tensor=_rebuild_tensor,
        _rebuild_tensor_v2=_rebuild_tensor_v2,
        _rebuild_tensor_v3=_rebuild_tensor_v3,
        _rebuild_parameter=_rebuild_parameter,
        _rebuild_parameter_with_state=_rebuild_parameter_with_state,
        _rebuild_meta_tensor_no_storage=_rebuild_meta_tensor_no_storage)
    return {
        f'torch._utils.{name}': (getattr(torch._utils, name), check)
        for name, check in checks.items() if hasattr(torch._utils, name)
    }


#: ``{id(function): (function, check)}`` of the tensor rebuilds.
_TENSOR_REBUILDS = {
    id(fn): (fn, check)
    for fn, check in _torch_rebuilds().values()
}

_LAYOUTS = {
    str(v): v
    for v in vars(torch).values() if isinstance(v, torch.layout)
}


def _get_layout(name):
    if type(name) is not str or name not in _LAYOUTS:
        _refuse(f'unknown torch layout {_describe(name)}')
    return _LAYOUTS[name]


def _torch_size(sizes=()):
    return torch.Size(_ints(sizes, 'torch.Size'))


def _torch_device(kind, index=None):
    if type(kind) is not str or len(kind) > 64 or index is not None and (
            type(index) is not int or not 0 <= index < 2**16):
        _refuse(f'torch.device{_describe((kind, index))} is not allowed')
    return torch.device(kind) if index is None else torch.device(kind, index)


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
    out.update({name: fn for name, (fn, _) in _torch_rebuilds().items()})
    # dtypes pickle as the global torch.float32 (aliases too: torch.float)
    for name, value in vars(torch).items():
        if isinstance(value, torch.dtype):
            out[f'torch.{name}'] = value
    return out


# ------------------------------------------------ builtins, collections


def _codecs_encode(text, encoding):
    # protocol 2 pickles bytes as _codecs.encode(str, 'latin1'); another
    # codec name would import a module of the encodings package
    if type(text) is not str or encoding not in ('latin1', 'latin-1'):
        _refuse(f'_codecs.encode{_describe((text, encoding))} is not '
                f'allowed: only (str, "latin1")')
    return text.encode('latin1')


def _bytes(data=b''):
    if type(data) is not bytes:  # bytes(10**12) would allocate a TB
        _refuse(f'bytes({_describe(data)}) is not allowed: only bytes()')
    return data


def _bytearray(data=b'', encoding=None):
    if type(data) is bytes and encoding is None or \
            type(data) is str and encoding in ('latin1', 'latin-1'):
        return bytearray(
            data if type(data) is bytes else data.encode('latin1'))
    _refuse(f'bytearray{_describe((data, encoding))} is not allowed: only '
            f'(bytes) or (str, "latin-1")')


def _items(items: Any, what: str) -> Any:
    # never iterate another object: a view of 2**40 elements is a hang
    if type(items) not in (list, tuple):
        _refuse(f'{what} takes a list or tuple, got {_describe(items)}')
    return items


def _set(items=()):
    return set(_items(items, 'set'))


def _frozenset(items=()):
    return frozenset(_items(items, 'frozenset'))


def _complex(real=0.0, imag=0.0):
    if type(real) not in (int, float) or type(imag) not in (int, float):
        _refuse(f'complex{_describe((real, imag))} is not allowed: only '
                f'numbers')
    return complex(real, imag)


def _slice(*args):
    if not 1 <= len(args) <= 3 or any(
            a is not None and type(a) is not int for a in args):
        _refuse(f'slice{_describe(args)} is not allowed: only ints / None')
    return slice(*args)


def _mapping(items: Any, what: str) -> Any:
    if type(items) is dict:
        return items
    for pair in _items(items, what):
        if type(pair) is not tuple or len(pair) != 2:
            _refuse(f'{what} takes (key, value) pairs, got {_describe(pair)}')
    return items


def _ordered_dict(items=()):
    return collections.OrderedDict(_mapping(items, 'OrderedDict'))


def _counter(items=None):
    if items is None:
        return collections.Counter()
    if type(items) is not dict:
        _refuse(f'Counter({_describe(items)}) is not allowed: only a dict')
    return collections.Counter(items)


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Restricted stand-in for ``builtins.getattr`` during unpickling.

    ``HistoryBuffer.__getstate__`` stores ``_statistics_methods``, a dict of
    functions (``HistoryBuffer.min`` ...), which pickle writes as
    ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would
    let a pickle reach any attribute of any allowed object (e.g.
    ``getattr(getattr, '__self__')`` is the ``builtins`` module, one step
    from ``exec``). This only resolves the four default statistics of
    ``HistoryBuffer``.

    Args:
        obj (Any): Must be ``HistoryBuffer``.
        name (str): One of ``min``, ``max``, ``mean``, ``current``.

    Returns:
        Callable: The function ``HistoryBuffer.<name>``.
    """
    if obj is not HistoryBuffer or type(name) is not str or \
            name not in _HISTORY_BUFFER_STATS:
        raise RefusedArgumentsError(
            f'getattr({_describe(obj)}, {_describe(name)}) is not allowed: '
            f'the checkpoint allow-list only resolves '
            f'HistoryBuffer.{{{",".join(_HISTORY_BUFFER_STATS)}}}')
    return getattr(HistoryBuffer, name)


# -------------------------------------------------------- HistoryBuffer


def new_history_buffer() -> HistoryBuffer:
    """What ``NEWOBJ`` of ``HistoryBuffer`` makes: an empty buffer, built
    by its own ``__init__`` (which only adds the default statistics if
    missing, as any ``HistoryBuffer()`` does); the ``BUILD`` after it goes
    through :func:`_build_history_buffer`, never ``__setstate__`` (which
    writes the class-wide ``_statistics_methods`` table)."""
    return HistoryBuffer()


def _history(values: Any, what: str) -> np.ndarray:
    """A 1-D numeric array from a checked array or a list of numbers: only
    numbers reach ``np.array``."""
    if isinstance(values, np.ndarray):
        _numeric_dtype_arg(values.dtype, what)
        if values.ndim != 1:
            _refuse(f'{what} must be 1-D, got shape {values.shape}')
        return values.copy()
    if type(values) in (list, tuple) and all(
            type(v) in (int, float, bool)
            or isinstance(v, np.number) and is_numeric_dtype(v.dtype)
            for v in values):
        return np.array(
            [v.item() if isinstance(v, np.number) else v for v in values])
    _refuse(f'{what} must be a numeric array or a list of numbers, got '
            f'{_describe(values)}')


def _build_history_buffer(buf: HistoryBuffer, state: Any) -> None:
    """``BUILD`` of a ``HistoryBuffer``: its histories (numbers), its
    ``max_length`` and the default statistics; applied to this instance
    only."""
    known = ('max_length', '_log_history', '_count_history',
             'statistics_methods')
    if type(state) is not dict or not set(state) <= set(known) or any(
            type(k) is not str for k in state):
        _refuse(f'HistoryBuffer state must be a dict with keys among '
                f'{known}, got {_describe(state)}' +
                (f' with keys {sorted(map(_describe, state))}'
                 if type(state) is dict else ''))
    # the class-wide table as it was when saved: the defaults under their
    # own names (checked, then left as they are), statistics a run
    # registered (trusted globals; ignored: registered by code, not files)
    methods = state.get('statistics_methods', {})
    if type(methods) is not dict or any(
            type(k) is not str or k in _HISTORY_BUFFER_STATS
            and v is not getattr(HistoryBuffer, k)
            for k, v in methods.items()):
        _refuse('HistoryBuffer statistics_methods may only hold the default '
                f'statistics HistoryBuffer.{{{",".join(_HISTORY_BUFFER_STATS)}'
                '}} under their own names')
    max_length = _int(
        state.get('max_length', buf.max_length),
        'HistoryBuffer max_length',
        low=1)
    logs = _history(state.get('_log_history', []), 'HistoryBuffer history')
    counts = _history(state.get('_count_history', []), 'HistoryBuffer counts')
    if len(logs) != len(counts):
        _refuse(f'HistoryBuffer history ({len(logs)}) and counts '
                f'({len(counts)}) differ in length')
    buf.max_length = max_length
    buf._log_history = logs
    buf._count_history = counts


# ---------------------------------------------------------- allow-list


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
        # message_hub['log_scalars'] values (NEWOBJ + BUILD)
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
#: (restricted to ``HistoryBuffer.min/max/mean/current``). Which of them may
#: be called, and with what, is :data:`CALL_CHECKS`.
SAFE_GLOBALS: Mapping[str, Any] = types.MappingProxyType(_build_safe_globals())


def _build_call_checks() -> Dict[int, Tuple[Any, Callable, str]]:
    """``{id(allowed callable): (it, check, name)}``; see
    :data:`CALL_CHECKS`."""
    checks: Dict[str, Callable] = {
        'collections.OrderedDict': _ordered_dict,
        'collections.Counter': _counter,
        '_codecs.encode': _codecs_encode,
        'builtins.bytes': _bytes,
        'builtins.bytearray': _bytearray,
        'builtins.set': _set,
        'builtins.frozenset': _frozenset,
        'builtins.complex': _complex,
        'builtins.slice': _slice,
        'builtins.getattr': _history_buffer_getattr,
        'numpy.core.multiarray.scalar': _scalar,
        'numpy.core.multiarray._reconstruct': _reconstruct,
        'numpy.dtype': _make_dtype(np.dtype),
        'torch.Size': _torch_size,
        'torch.device': _torch_device,
        'torch.serialization._get_layout': _get_layout,
        'torch._tensor._rebuild_from_type_v2': _rebuild_from_type_v2,
    }
    checks.update({
        name: check
        for name, (_, check) in _torch_rebuilds().items()
    })
    for name, obj in SAFE_GLOBALS.items():
        if isinstance(obj, type) and obj is not np.dtype and \
                issubclass(obj, np.dtype):
            checks[name] = _make_dtype(obj)
    return {
        id(SAFE_GLOBALS[name]): (SAFE_GLOBALS[name], check, name)
        for name, check in checks.items()
    }


#: The callables of :data:`SAFE_GLOBALS` that a pickle may call (``REDUCE``
#: and its kin), each only through its check:
#: ``{id(callable): (callable, check, name)}``. ``check(*args)`` raises
#: :class:`RefusedArgumentsError` for arguments the callable may not get
#: and otherwise returns what the call would. Everything else of the
#: allow-list (``numpy.ndarray``, ``torch.Tensor``, ``Parameter``,
#: ``HistoryBuffer``, the ``HistoryBuffer.*`` functions) is an argument
#: only; ``HistoryBuffer`` is rebuilt by :func:`new_history_buffer`.
CALL_CHECKS: Mapping[int,
                     Tuple[Any, Callable,
                           str]] = types.MappingProxyType(_build_call_checks())


def build_check_for(obj: Any) -> Callable:
    """How a ``BUILD`` (a pickled state) may be applied to an object that a
    check just made, ``None`` if it may not: an empty array from
    ``_reconstruct`` (numeric data of the right size), a dtype (numpy's own
    state), a ``HistoryBuffer`` (numbers), an ``OrderedDict`` (a
    state_dict's ``_metadata``). The unpickler applies it once, to that
    object only."""
    if type(obj) is np.ndarray:
        return _build_ndarray
    if isinstance(obj, np.dtype):
        return _build_dtype
    if type(obj) is HistoryBuffer:
        return _build_history_buffer
    if type(obj) is collections.OrderedDict:  # a state_dict's _metadata
        return _set_state
    return None


def apply_trusted_state(obj: Any, state: Any) -> None:
    """``BUILD`` on an instance of a trusted (opted-in) class: its
    ``__setstate__`` if it defines one (trusted code), else new plain
    attributes (see :func:`_set_state`)."""
    setstate = getattr(type(obj), '__setstate__', None)
    if setstate is not None and setstate is not getattr(
            object, '__setstate__', None):
        obj.__setstate__(state)
    else:
        _set_state(obj, state)


# -------------------------------------------------------------- opt-ins

_trusted: Dict[str, Any] = {}


def _never_trusted_objects() -> Dict[int, str]:
    """``{id(object): name}`` of the refused globals, to refuse them under
    any alias."""
    out = {}
    for name in _NEVER_TRUSTED:
        out[id(getattr(builtins, name.split('.', 1)[1]))] = name
    for mod in ('os', 'sys', 'subprocess', 'shutil', 'importlib', 'pickle',
                'runpy'):
        module = importlib.import_module(mod)
        for attr, value in vars(module).items():
            if callable(value) and not isinstance(value, type):
                out.setdefault(id(value), f'{mod}.{attr}')
    return out


def _refused_name(obj: Any) -> str:
    """The refused name ``obj`` is known as, or ``''``."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    known = _NEVER_TRUSTED_OBJECTS.get(id(obj))
    if known:
        return known
    module = getattr(obj, '__module__', None)
    name = f'{module}.{getattr(obj, "__qualname__", "")}'
    if isinstance(module,
                  str) and (name in _NEVER_TRUSTED
                            or module.split('.')[0] in _NEVER_TRUSTED_MODULES):
        return name
    return ''


def _resolve_global(name: str) -> Any:
    """Import ``module.qualname`` (the longest importable module prefix)
    and check the object itself, whatever name reached it."""
    if type(name) is not str or name in _NEVER_TRUSTED or \
            name.split('.')[0] in _NEVER_TRUSTED_MODULES:
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
        refused = _refused_name(obj)
        if refused:
            raise ValueError(
                f'{name} cannot be a trusted checkpoint global: it is '
                f'{refused}, which runs code or touches the system')
        return obj
    raise ValueError(
        f'Cannot resolve trusted checkpoint global {name!r}: give it as '
        f'module.qualname, e.g. argparse.Namespace')


def _with_own_name(name: str, obj: Any) -> Dict[str, Any]:
    """``{name: obj}`` plus the name pickle writes for ``obj``
    (``module.qualname``) if that resolves to ``obj`` too."""
    out = {name: obj}
    module = getattr(obj, '__module__', None)
    qualname = getattr(obj, '__qualname__', None)
    if isinstance(module, str) and isinstance(qualname, str):
        own = f'{module}.{qualname}'
        try:
            target = importlib.import_module(module)
            for attr in qualname.split('.'):
                target = getattr(target, attr)
        except (ImportError, AttributeError):
            return out
        if target is obj:
            out[own] = obj
    return out


def trust_checkpoint_globals(names: Iterable[str]) -> None:
    """Allow extra globals in every later checkpoint load of this process.

    Only for files you trust (e.g. official MixMIM checkpoints that pickle
    ``argparse.Namespace``). Loading stays restricted; the named globals are
    merely added to the allow-list (and called with whatever arguments the
    file gives).

    Args:
        names (Iterable[str]): Dotted names, e.g. ``['argparse.Namespace']``.
    """
    if isinstance(names, str):
        names = [names]
    for name in names:
        _trusted.update(_with_own_name(name, _resolve_global(name)))
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
            _trusted.update(_with_own_name(name, _resolve_global(name)))
        yield
    finally:
        _trusted.clear()
        _trusted.update(saved)


def _env_trusted() -> Dict[str, Any]:
    value = os.environ.get(TRUSTED_GLOBALS_ENV, '')
    out: Dict[str, Any] = {}
    for name in value.split(','):
        if name.strip():
            out.update(
                _with_own_name(name.strip(), _resolve_global(name.strip())))
    return out


def allowed_globals() -> Dict[str, Any]:
    """Everything our loads allow right now.

    Returns:
        dict: ``{'module.qualname': object}``: :data:`SAFE_GLOBALS` plus the
        opted-in trusted globals (which cannot replace an entry of
        :data:`SAFE_GLOBALS`, e.g. the restricted ``getattr``).
    """
    return {**_trusted, **_env_trusted(), **SAFE_GLOBALS}


def trusted_objects() -> Dict[int, Any]:
    """``{id(object): object}`` of the opted-in globals that are not in
    :data:`SAFE_GLOBALS`: these are called and built without checks."""
    safe = {id(v) for v in SAFE_GLOBALS.values()}
    return {
        id(obj): obj
        for obj in {
            **_trusted,
            **_env_trusted()
        }.values() if id(obj) not in safe
    }


_NEVER_TRUSTED_OBJECTS = _never_trusted_objects()

__all__ = [
    'CALL_CHECKS', 'RefusedArgumentsError', 'SAFE_GLOBALS',
    'TRUSTED_GLOBALS_ENV', 'allowed_globals', 'apply_trusted_state',
    'build_check_for', 'is_numeric_dtype', 'new_history_buffer',
    'trust_checkpoint_globals', 'trusted_checkpoint_globals', 'trusted_objects'
]
