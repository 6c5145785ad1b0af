# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
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

How: every load goes through :func:`safe_torch_load`, which first checks
the file and then calls ``torch.serialization.load(f,
pickle_module=<restricted>, weights_only=False)`` (``weights_only=False``
only makes torch use the given pickle module; torch refuses
``pickle_module`` together with ``weights_only=True``).

The file, before torch sees it:

* only torch's zip format (torch >= 1.6) is read. Legacy files (a tar
  archive, or pickles followed by raw storages) are refused: torch's
  legacy reader extracts tar members (a FIFO member blocks forever) and
  allocates whatever storage sizes the file declares;
* every record is stored or deflated (what torch's reader can read), has a
  name no other record has (also ignoring case, as torch's reader looks
  names up), and passes its CRC-32 check, read in bounded chunks; the
  records declare at most ``4 x file size + 64 MiB`` in all (a deflate
  bomb is refused before anything is inflated); Python's and torch's zip
  readers must see the same records at the same offsets, so the bytes
  checked are the bytes torch reads;
* TorchScript archives (``constants.pkl``) are refused, because
  ``torch.load`` hands them to ``torch.jit.load`` whatever ``pickle_module``
  says.

The pickle (the restricted unpickler, the same on every torch; it needs the
pure-Python ``pickle._Unpickler``, as torch's own ``weights_only``
unpickler does, since the C unpickler cannot restrict an opcode):

* resolves only the globals of
  :func:`~mixmae_mm.engine.safe_globals.allowed_globals` (``EXT`` codes
  too, never from ``copyreg``'s process-wide cache) and never imports
  anything;
* calls an allowed callable (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``)
  only through its argument check
  (:data:`~mixmae_mm.engine.safe_globals.CALL_CHECKS`: numeric numpy
  dtypes only, tensor views inside their storage, no iteration of
  anything but lists and tuples...); a ``HistoryBuffer`` is rebuilt from
  numbers without its ``__setstate__``;
* applies a state (``BUILD``) only to the arrays, dtypes and
  ``HistoryBuffer`` objects that a check just made (checked again), or to
  instances of trusted classes; fills (``SETITEM``, ``APPEND``...) only
  dicts, lists and sets;
* accepts a storage (persistent id) only as torch writes it: a record of
  the file whose size is the declared number of elements times their size
  (torch 2.1 does not check it and reads past the record).

Refusals raise :class:`UnsafeCheckpointError`, which names every refused
global (found by scanning the pickle with ``pickletools``, nothing is
executed) and the opt-ins; damaged or malformed files raise
:class:`CorruptCheckpointError`. Both name the file. Errors of the
caller's ``map_location`` pass unchanged. With the environment variable
``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, torch refuses every custom pickle
module, so loads stop with a ``RuntimeError`` that says so (unset it for
runs that load mmengine checkpoints; the loads stay restricted). Nothing
ever falls back to an unrestricted unpickler.

mmengine's loaders reach :func:`safe_torch_load` through
:mod:`mixmae_mm.engine.checkpoint`.
"""
import _compat_pickle
import collections
import copyreg
import io
import os
import pickle
import pickletools
import re
import struct
import types
import zipfile
import zlib
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from mmengine.logging.history_buffer import HistoryBuffer

from .safe_globals import (CALL_CHECKS, TRUSTED_GLOBALS_ENV,
                           RefusedArgumentsError, _build_history_buffer,
                           _describe, allowed_globals, apply_trusted_state,
                           build_check_for, new_history_buffer,
                           trusted_objects)

#: torch's switch that forces ``weights_only=True`` on every ``torch.load``
#: (and so refuses any ``pickle_module``); torch >= 1.13 reads it.
_FORCE_WEIGHTS_ONLY_ENV = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'

#: The first bytes of a zip file: what ``torch.load`` checks to choose its
#: zip reader (and, for TorchScript, ``torch.jit.load``).
_ZIP_MAGIC = b'PK\x03\x04'

#: The records of one file may declare at most this many times the file's
#: size, plus :data:`_INFLATION_SLACK` bytes (torch writes stored records:
#: their sizes add up to less than the file).
_MAX_INFLATION = 4
_INFLATION_SLACK = 64 * 2**20

#: Bytes read from a record at a time while checking its CRC-32.
_CHUNK = 2**20

#: Devices a storage may be tagged with (torch's location strings).
_LOCATION = re.compile(
    r'(cpu|cuda|mps|meta|xpu|hpu|mtia|xla|ipu|privateuseone|' +
    re.escape(torch._C._get_privateuse1_backend_name()) + r')(:[0-9]{1,4})?')
#: Storage keys (torch writes decimal numbers).
_KEY = re.compile(r'[A-Za-z0-9_]{1,64}')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles objects outside the allow-list, gives allowed
    ones arguments they may not get, or is a file torch would not read
    safely (a TorchScript archive, a legacy file, a crafted zip)."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is truncated, damaged or malformed."""


class _CallerError(Exception):
    """An error of the caller's ``map_location`` (raised inside torch's
    storage loading), passed on unchanged."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class _Malformed(Exception):
    """The pickle is malformed (an error that is no refusal)."""


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


_MAPPINGS = (dict, collections.OrderedDict, collections.Counter)


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves only :attr:`allowed` and calls and builds
    only through the checks (see the module docstring). Subclassed per
    load by :func:`_restricted_pickle_module`, which sets the class
    attributes."""

    #: ``{'module.qualname': object}`` of this load.
    allowed: Mapping[str, Any]
    #: ``{id(object): object}``: opted-in globals, called without checks.
    trusted: Mapping[int, Any]
    #: ``{record name: size}`` of the file, as torch names them.
    records: Mapping[str, int]
    #: Collects the names that :meth:`find_class` refused, in order (for
    #: the message).
    refused: List[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ``{id(obj): (obj, apply)}``: objects a check just made that the
        #: next ``BUILD`` of them may fill, once.
        self._pending: Dict[int, Tuple[Any, Any]] = {}

    def load(self) -> Any:
        try:
            return super().load()
        except (pickle.UnpicklingError, _CallerError, _Malformed):
            raise
        except MemoryError:
            raise _Malformed('it needs more memory than this process may '
                             'allocate (MemoryError)') from None
        except Exception as err:
            raise _Malformed(f'{type(err).__name__}: '
                             f'{str(err)[:300]}') from None
        finally:
            self._pending.clear()

    def find_class(self, module: str, name: str) -> Any:
        key = _canonical(module, name, self.proto < 3 and self.fix_imports)
        try:
            return self.allowed[key]
        except KeyError:
            if key not in self.refused:
                self.refused.append(key)
            raise pickle.UnpicklingError(
                f'global {key} is not in the allow-list') from None

    def get_extension(self, code: int) -> None:
        # EXT1/2/4: always through find_class; copyreg's process-wide cache
        # holds what any earlier (unrestricted) unpickler resolved
        key = copyreg._inverted_registry.get(code)
        if not key:
            raise pickle.UnpicklingError(f'unregistered extension code {code}')
        self.append(self.find_class(*key))

    def _is_trusted(self, obj: Any) -> bool:
        return self.trusted.get(id(obj)) is obj

    def _call(self, func: Any, args: Any) -> Any:
        """``func(*args)`` through its check (or a trusted global)."""
        if type(args) is not tuple:
            raise RefusedArgumentsError(
                f'arguments of {_describe(func)} must be a tuple, got '
                f'{_describe(args)}')
        entry = CALL_CHECKS.get(id(func))
        if entry is not None and entry[0] is func:
            try:
                obj = entry[1](*args)
            except pickle.UnpicklingError:
                raise
            except (TypeError, ValueError, RuntimeError, OverflowError,
                    KeyError, IndexError, AttributeError) as err:
                raise RefusedArgumentsError(
                    f'{entry[2]}{_describe(args)} failed: '
                    f'{type(err).__name__}: {str(err)[:200]}') from None
            apply = build_check_for(obj)
            if apply is not None:
                self._pending[id(obj)] = (obj, apply)
            return obj
        if self._is_trusted(func):
            return func(*args)
        raise RefusedArgumentsError(
            f'calling {_describe(func)} is not allowed: only the checked '
            f'callables of the allow-list (mixmae_mm.engine.safe_globals.'
            f'CALL_CHECKS) and trusted globals may be called')

    def _new(self, cls: Any, args: Any, kwargs: Any) -> Any:
        """``cls.__new__(cls, *args, **kwargs)``: an empty
        ``HistoryBuffer`` or an instance of a trusted class."""
        if cls is HistoryBuffer and args == () and type(args) is tuple \
                and not kwargs:
            obj = new_history_buffer()
            self._pending[id(obj)] = (obj, _build_history_buffer)
            return obj
        if self._is_trusted(cls) and isinstance(cls, type):
            return cls.__new__(cls, *args, **kwargs)
        raise RefusedArgumentsError(
            f'creating an instance of {_describe(cls)} is not allowed: only '
            f'HistoryBuffer() (then filled with numbers) and trusted classes')

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, {}))

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _instantiate(self, klass: Any, args: List[Any]) -> None:
        # INST / OBJ: a call, or with no arguments an empty instance
        if not args and (klass is HistoryBuffer or self._is_trusted(klass)):
            self.append(self._new(klass, (), {}))
        else:
            self.append(self._call(klass, tuple(args)))

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        pending = self._pending.pop(id(inst), None)
        if pending is not None and pending[0] is inst:
            pending[1](inst, state)
        elif self._is_trusted(type(inst)):
            apply_trusted_state(inst, state)
        else:
            raise RefusedArgumentsError(
                f'setting the state of {_describe(inst)} is not allowed: '
                f'BUILD only applies, once, to the numpy arrays and dtypes '
                f'and the HistoryBuffer a check just made, and to instances '
                f'of trusted classes')

    def _fillable(self, target: Any, kinds: Tuple[type, ...]) -> Any:
        if type(target) not in kinds and not self._is_trusted(type(target)):
            raise RefusedArgumentsError(
                f'filling a {type(target).__name__} is not allowed: only '
                f'{"/".join(k.__name__ for k in kinds)}')
        return target

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._fillable(self.stack[-1], _MAPPINGS)[key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._fillable(self.stack[-1], _MAPPINGS)
        if len(items) % 2:
            raise _Malformed('SETITEMS with an odd number of items')
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._fillable(self.stack[-1], (list, )).append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._fillable(self.stack[-1], (list, )).extend(items)

    def _load_additems(self) -> None:
        items = self.pop_mark()
        self._fillable(self.stack[-1], (set, )).update(items)

    def _check_storage_id(self, pid: Any) -> None:
        """A persistent id as torch writes it: ``('storage', storage type,
        key, location, numel)`` naming a record of exactly numel
        elements."""
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != 'storage' \
                or type(pid[0]) is not str:
            raise RefusedArgumentsError(
                f'persistent id {_describe(pid)} is not allowed: only '
                f'("storage", type, key, location, numel)')
        _, storage_type, key, location, numel = pid
        dtype = getattr(storage_type, 'dtype', None) \
            if type(storage_type) is torch.serialization.StorageType \
            else None
        if not isinstance(dtype, torch.dtype):
            raise RefusedArgumentsError(
                f'storage type {_describe(storage_type)} is not a torch '
                f'storage type')
        if type(key) is not str or not _KEY.fullmatch(key):
            raise RefusedArgumentsError(
                f'storage key {_describe(key)} is not allowed')
        if type(location) is not str or not _LOCATION.fullmatch(location):
            raise RefusedArgumentsError(
                f'storage location {_describe(location)} is not a device')
        nbytes = numel * torch._utils._element_size(dtype) \
            if type(numel) is int and numel >= 0 else None
        size = self.records.get(f'data/{key}')
        if nbytes is None or size != nbytes:
            raise RefusedArgumentsError(
                f'storage {key} declares {_describe(numel)} elements of '
                f'{dtype} but its record data/{key} has '
                f'{"no" if size is None else size} bytes')

    def _load_persid(self) -> None:
        # protocol 0: a str id, never what torch writes
        raise RefusedArgumentsError(
            'a protocol-0 persistent id is not allowed: only tuples')

    def _load_binpersid(self) -> None:
        pid = self.stack.pop()
        self._check_storage_id(pid)
        try:
            storage = self.persistent_load(pid)
        except Exception as err:  # map_location's (the record is sound)
            raise _CallerError(err) from err
        self.append(storage)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.PERSID[0]] = _load_persid
    dispatch[pickle.BINPERSID[0]] = _load_binpersid


def _restricted_pickle_module(allowed: Mapping[str, Any],
                              records: Mapping[str, int],
                              refused: List[str]) -> types.ModuleType:
    """A module-like object for ``torch.load(pickle_module=...)``: torch
    subclasses its ``Unpickler`` (to resolve storages); ``load`` is never
    used for zip files (kept for the module protocol)."""
    unpickler = type(
        'Unpickler', (_RestrictedUnpickler, ),
        dict(
            allowed=allowed,
            trusted=trusted_objects(),
            records=records,
            refused=refused))
    module = types.ModuleType('mixmae_mm_restricted_pickle')
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    return module


# ------------------------------------------------------------- the file


class _Problem(Exception):
    """What is wrong with a file, as the end of a sentence; ``unsafe``:
    crafted rather than damaged."""

    def __init__(self, text: str, unsafe: bool = False):
        super().__init__(text)
        self.text = text
        self.unsafe = unsafe


def _is_zip(fobj: io.IOBase) -> bool:
    """Whether ``torch.load`` would read ``fobj`` as a zip (its first
    bytes); the position is kept."""
    start = fobj.tell()
    try:
        return fobj.read(4) == _ZIP_MAGIC
    finally:
        fobj.seek(start)


_COMPRESSION = {
    zipfile.ZIP_BZIP2: 'bzip2',
    zipfile.ZIP_LZMA: 'lzma',
}


def _data_offset(fobj: io.IOBase, info: zipfile.ZipInfo) -> int:
    """Where a record's data starts (after its local header), as Python's
    zip reader finds it."""
    fobj.seek(info.header_offset)
    header = fobj.read(30)
    if len(header) != 30 or header[:4] != _ZIP_MAGIC:
        raise _Problem(f'has a damaged record header: {info.filename}')
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _small_record(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > 64:
        raise _Problem(
            f'has a {info.file_size}-byte {name} record (torch '
            f'writes a few bytes)',
            unsafe=True)
    return archive.read(info)


def _check_records(fobj: io.IOBase, archive: zipfile.ZipFile,
                   size: int) -> Dict[str, int]:
    """The zip checks of the module docstring; ``{record name as torch
    names it: size}``."""
    infos = archive.infolist()
    if not infos:
        raise _Problem('is a zip archive without records')
    seen = set()
    total = 0
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED,
                                      zipfile.ZIP_DEFLATED):
            kind = _COMPRESSION.get(info.compress_type,
                                    f'method {info.compress_type}')
            raise _Problem(
                f'has a record compressed with {kind} ({info.filename}); '
                f'torch writes stored records and reads stored or '
                f'deflated ones only',
                unsafe=True)
        if info.flag_bits & 0x1:
            raise _Problem(
                f'has an encrypted record ({info.filename})', unsafe=True)
        if info.filename.lower() in seen:
            raise _Problem(
                f'has two records named {info.filename!r} (ignoring case): '
                f'torch would read one of them, other zip readers the other',
                unsafe=True)
        seen.add(info.filename.lower())
        total += info.file_size
    cap = _MAX_INFLATION * size + _INFLATION_SLACK
    if total > cap:
        raise _Problem(
            f'declares {total} bytes of records, over the limit of {cap} '
            f'bytes ({_MAX_INFLATION} x its size + '
            f'{_INFLATION_SLACK >> 20} MiB): a decompression bomb',
            unsafe=True)
    for info in infos:
        try:
            with archive.open(info) as record:
                while record.read(_CHUNK):
                    pass
        except zipfile.BadZipFile as err:
            if 'CRC' in str(err):
                raise _Problem(
                    f'has a damaged record: {info.filename} fails its '
                    'CRC-32 check (the file changed after it was written)'
                ) from None
            raise _Problem(f'has a damaged record: {info.filename} '
                           f'({err})') from None
        except (EOFError, zlib.error, OSError, ValueError,
                struct.error) as err:
            raise _Problem(f'has a damaged record: {info.filename} '
                           f'({type(err).__name__}: {err})') from None
    # torch reads the records under the first record's folder
    prefix = infos[0].filename.split('/', 1)[0] + '/'
    records = {
        info.filename[len(prefix):]: info
        for info in infos if info.filename.startswith(prefix)
    }
    if 'data.pkl' not in records:
        raise _Problem(f'has no {prefix}data.pkl record (not a torch.save '
                       f'file)')
    if 'byteorder' in records and _small_record(
            archive, prefix + 'byteorder') not in (b'little', b'big'):
        raise _Problem('has a byteorder record other than little / big')
    if '.storage_alignment' in records and not _small_record(
            archive, prefix + '.storage_alignment').isdigit():
        raise _Problem('has a .storage_alignment record that is no number')
    _same_as_torch(fobj, records, len(infos))
    return {name: info.file_size for name, info in records.items()}


def _same_as_torch(fobj: io.IOBase, records: Dict[str, zipfile.ZipInfo],
                   count: int) -> None:
    """torch's zip reader (miniz) sees the same records as Python's, at
    the same offsets: the bytes checked above are the bytes torch reads."""
    try:
        fobj.seek(0)
        reader = torch._C.PyTorchFileReader(fobj)
        names = reader.get_all_records()
        offsets = {n: reader.get_record_offset(n) for n in names}
    except RuntimeError as err:
        raise _Problem(f"cannot be read by torch's zip reader "
                       f'({str(err).splitlines()[0][:200]})') from None
    if len(names) != count or set(names) != set(records):
        raise _Problem(
            "is read differently by torch's zip reader and Python's (other "
            'records)',
            unsafe=True)
    for name, info in records.items():
        if offsets[name] != _data_offset(fobj, info):
            raise _Problem(
                f"is read differently by torch's zip reader and Python's "
                f'(record {info.filename} at another offset)',
                unsafe=True)


def _inspect(fobj: io.IOBase) -> Dict[str, int]:
    """The records of a zip checkpoint (``{name: size}``, names as torch
    sees them), or :class:`_Problem`; the position is kept."""
    start = fobj.tell()
    try:
        size = fobj.seek(0, io.SEEK_END)
        fobj.seek(start)
        try:
            archive = zipfile.ZipFile(fobj)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError,
                struct.error, NotImplementedError):
            raise _Problem('is not a complete zip archive: it is truncated, '
                           'e.g. its writing was interrupted') from None
        with archive:
            return _check_records(fobj, archive, size)
    finally:
        fobj.seek(start)


def checkpoint_damage(fobj: io.IOBase) -> Optional[str]:
    """What is wrong with the bytes of a zip checkpoint, ``None`` if
    nothing (or if it is no zip: such files are refused when loaded).

    ``torch.load`` does not check the records' CRC-32, so a damaged byte
    would load as a wrong weight; this reads the whole file once to check
    them (and the other zip checks of this module). The position is kept.

    Args:
        fobj (io.IOBase): The open, seekable checkpoint file.

    Returns:
        str | None: The damage, as the end of a sentence.
    """
    if not _is_zip(fobj):
        return None
    try:
        _inspect(fobj)
    except _Problem as problem:
        return problem.text
    return None


def _file_size(fobj: io.IOBase) -> int:
    start = fobj.tell()
    try:
        return fobj.seek(0, io.SEEK_END)
    finally:
        fobj.seek(start)


def _corrupt(source: str, fobj: io.IOBase, what: str) -> str:
    return (f'Checkpoint {source} ({_file_size(fobj)} bytes) {what}. It '
            'cannot be loaded; use an earlier checkpoint.')


def _unsafe(source: str, fobj: io.IOBase, what: str) -> str:
    return (f'Refused to load checkpoint {source} ({_file_size(fobj)} '
            f'bytes): it {what}. Loading never falls back to '
            f'weights_only=False (unrestricted unpickling).')


def _not_zip(source: str, fobj: io.IOBase) -> Exception:
    """The error for a file that is no zip archive."""
    start = fobj.tell()
    head = fobj.read(512)
    fobj.seek(start)
    if not head:
        return CorruptCheckpointError(_corrupt(source, fobj, 'is empty'))
    if head[:1] == b'\x80' or head[257:262] == b'ustar':
        return UnsafeCheckpointError(
            _unsafe(
                source, fobj,
                "is in torch's legacy format (written by torch < 1.6 or with "
                '_use_new_zipfile_serialization=False), which is refused: '
                "torch's legacy reader extracts tar members and allocates the "
                'storage sizes the file declares. If you trust the file, load '
                'it once elsewhere and save it again with torch.save'))
    return CorruptCheckpointError(
        _corrupt(
            source, fobj, 'is no torch checkpoint (neither a zip archive nor '
            "torch's legacy format)"))


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


def _refused_in(fobj: io.IOBase, allowed: Mapping[str, Any]) -> List[str]:
    """Every global of the checkpoint's ``data.pkl`` that ``allowed``
    refuses, in order (the file passed :func:`_inspect`)."""
    start = fobj.tell()
    refused: List[str] = []
    try:
        with zipfile.ZipFile(fobj) as archive:
            prefix = archive.infolist()[0].filename.split('/', 1)[0]
            data = archive.read(f'{prefix}/data.pkl')
        for key in _globals_in_pickle(io.BytesIO(data)):
            qualname = key.rsplit('.', 1)[-1]
            # storages are resolved by torch's unpickler wrapper
            by_torch = 'Storage' in qualname and hasattr(torch, qualname)
            if key not in allowed and not by_torch and key not in refused:
                refused.append(key)
    except Exception:  # a malformed pickle: report what find_class saw
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
    if not _is_zip(fobj):
        raise _not_zip(source, fobj)
    try:
        records = _inspect(fobj)
    except _Problem as problem:
        if problem.unsafe:
            raise UnsafeCheckpointError(_unsafe(source, fobj,
                                                problem.text)) from None
        raise CorruptCheckpointError(_corrupt(source, fobj,
                                              problem.text)) from None
    if 'constants.pkl' in records:
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
            pickle_module=_restricted_pickle_module(allowed, records, refused),
            weights_only=False,
            **pickle_load_args)
    except _CallerError as err:
        raise err.error from None
    except _Malformed as err:
        raise CorruptCheckpointError(
            _corrupt(source, fobj,
                     f'holds a malformed pickle ({err})')) from None
    except pickle.UnpicklingError as err:
        fobj.seek(start)
        names = _refused_in(fobj, allowed)
        names += [n for n in refused if n not in names]
        raise UnsafeCheckpointError(_explain(source, err, names)) from None
    except RuntimeError as err:
        # torch's zip reader on a file whose records passed the checks
        # (a map_location error passes unchanged)
        if 'PytorchStreamReader' not in str(err):
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
        CorruptCheckpointError: If the file is truncated, damaged (zip
            records are checked against their CRC-32) or malformed.
        UnsafeCheckpointError: If the file pickles anything outside
            :func:`allowed_globals`, gives an allowed callable arguments it
            may not get, or is a file torch would not read safely (a
            TorchScript archive, a legacy file, a crafted zip); the message
            names the refused globals and the opt-in.
        RuntimeError: If ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` is set (torch
            then refuses any custom unpickler).
    """
    return _restricted_load(f, map_location, None, {})


__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'checkpoint_damage',
    'safe_torch_load'
]
