# Copyright (c) OpenMMLab. All rights reserved.
"""Restricted unpickling of checkpoints, the same on every supported torch
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
  :func:`~mixmae_mm.engine.safe_globals.allowed_globals` (see
  :mod:`mixmae_mm.engine.safe_globals`, which also restricts
  ``builtins.getattr`` to ``HistoryBuffer.min/max/mean/current``);
  it returns the listed objects and never imports anything;
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

mmengine's loaders reach :func:`safe_torch_load` through
:mod:`mixmae_mm.engine.checkpoint`.
"""
import _compat_pickle
import copyreg
import inspect
import io
import os
import pickle
import pickletools
import types
import zipfile
from typing import Any, Dict, Iterator, List, Mapping, Optional

import torch

from .safe_globals import TRUSTED_GLOBALS_ENV, allowed_globals

#: torch's switch that forces ``weights_only=True`` on every ``torch.load``
#: (and so refuses any ``pickle_module``); torch >= 1.13 reads it.
_FORCE_WEIGHTS_ONLY_ENV = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'

#: The first bytes of a zip file: what ``torch.load`` checks to choose its
#: zip reader (and, for TorchScript, ``torch.jit.load``).
_ZIP_MAGIC = b'PK\x03\x04'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles objects outside the allow-list (or is a
    TorchScript archive, which would run code)."""


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
    docstring). Subclassed per load by :func:`_restricted_pickle_module`,
    which sets both attributes."""

    #: ``{'module.qualname': object}`` of this load.
    allowed: Mapping[str, Any]
    #: Collects the names that :meth:`find_class` refused, in order (for
    #: the message).
    refused: List[str]

    def find_class(self, module: str, name: str) -> Any:
        key = _canonical(module, name, self.proto < 3 and self.fix_imports)
        try:
            return self.allowed[key]
        except KeyError:
            if key not in self.refused:
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
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
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
        except (zipfile.BadZipFile, EOFError):
            return []  # torch.load will refuse it; nothing to scan
    finally:
        fobj.seek(start)


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is truncated or damaged."""


def checkpoint_damage(fobj: io.IOBase) -> Optional[str]:
    """What is wrong with the bytes of a zip checkpoint, ``None`` if
    nothing (or if it is no zip: legacy files are left to ``torch.load``).

    ``torch.load`` does not check the records' CRC-32, so a damaged byte
    would load as a wrong weight; this reads the whole file once to check
    them. The position is kept.

    Args:
        fobj (io.IOBase): The open, seekable checkpoint file.

    Returns:
        str | None: The damage, as the end of a sentence.
    """
    names = _zip_names(fobj)
    if names is None:
        return None
    if not names:
        return ('is not a complete zip archive: it is truncated, e.g. its '
                'writing was interrupted')
    start = fobj.tell()
    try:
        with zipfile.ZipFile(fobj) as archive:
            bad = archive.testzip()
    finally:
        fobj.seek(start)
    if bad is not None:
        return (f'has a damaged record: {bad} fails its CRC-32 check (the '
                'file changed after it was written)')
    return None


def _corrupt(source: str, fobj: io.IOBase, what: str) -> str:
    size = fobj.seek(0, io.SEEK_END)
    return (f'Checkpoint {source} ({size} bytes) {what}. It cannot be '
            'loaded; use an earlier checkpoint.')


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
            f'(mixmae_mm.engine.SAFE_GLOBALS, restricted unpickler). '
            f'Unpickler said: {detail}\n{how} Loading never '
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
            f'mixmae_mm.engine.safe_unpickler). Unset '
            f'{_FORCE_WEIGHTS_ONLY_ENV} for this run; the loads stay '
            f'restricted.')


def _load_file(fobj: io.IOBase, source: str, map_location: Any,
               pickle_load_args: Dict[str, Any]) -> Any:
    """Restricted ``torch.load`` of an open, seekable binary file."""
    _check_not_forced_weights_only(source)
    damage = checkpoint_damage(fobj)
    if damage:
        raise CorruptCheckpointError(_corrupt(source, fobj, damage))
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
    except (EOFError, UnicodeDecodeError, RuntimeError) as err:
        # a zip that passed the CRC checks is sound unless torch's reader
        # says otherwise (a map_location error is no damage); a legacy
        # (non-zip) file cut short ends in one of these errors
        if names is not None and 'PytorchStreamReader' not in str(err):
            raise
        raise CorruptCheckpointError(
            _corrupt(source, fobj,
                     f'is damaged ({type(err).__name__}: {err})')) from err


def _restricted_load(f: Any, map_location: Any, source: Optional[str],
                     pickle_load_args: Dict[str, Any]) -> Any:
    """Restricted load of a path or binary file; ``source`` names it in
    messages (``None``: the path, or the file's repr)."""
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
        CorruptCheckpointError: If the file is truncated or damaged (zip
            records are checked against their CRC-32).
        UnsafeCheckpointError: If the file pickles anything outside
            :func:`allowed_globals` or is a TorchScript archive; the message
            names the refused globals and the opt-in.
        RuntimeError: If ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` is set (torch
            then refuses any custom unpickler).
    """
    return _restricted_load(f, map_location, None, {})


__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'checkpoint_damage',
    'safe_torch_load'
]
