"""Crafted checkpoint files for ``test_hostile_checkpoints.py``: one
builder per attack, each writing a file that torch's zip reader (or its
legacy reader) would accept, with the pickle written opcode by opcode so
that nothing depends on the objects of the process that writes it.

Each entry of :data:`PAYLOADS` is ``(name, builder, expected, entry)``:
``builder(path, marker)`` writes the file (``marker``: the path a
successful exploit would create), ``expected`` is ``'refused'`` (our error)
or ``'loads'`` (harmless), ``entry`` the load path the child uses (see
``_hostile_runner.py``).
"""
import io
import lzma  # noqa: F401  (zipfile's ZIP_LZMA needs it)
import os
import struct
import tarfile
import warnings
import zipfile

# ------------------------------------------------------- pickle opcodes

PROTO = b'\x80\x02'
MARK, TUPLE, REDUCE, BUILD, STOP = b'(', b't', b'R', b'b', b'.'
NONE, TRUE, FALSE = b'N', b'\x88', b'\x89'
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE = b'}', b']', b')'
SETITEM, APPEND, NEWOBJ, BINPERSID = b's', b'a', b'\x81', b'Q'


def g(module, name):
    """GLOBAL module.name."""
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def s(text):
    """A str (BINUNICODE)."""
    data = text.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def i(n):
    """An int (BININT, or LONG1 beyond 32 bits)."""
    if -2**31 <= n < 2**31:
        return b'J' + struct.pack('<i', n)
    data = n.to_bytes((n.bit_length() + 8) // 8, 'little', signed=True)
    return b'\x8a' + bytes([len(data)]) + data


def by(data):
    """A bytes object (protocol 2 spelling: _codecs.encode(str, latin1))."""
    return call(g('_codecs', 'encode'), s(data.decode('latin1')), s('latin1'))


def t(*items):
    """A tuple of the pickled items."""
    return MARK + b''.join(items) + TUPLE


def call(func, *args):
    """``func(*args)`` (REDUCE)."""
    return func + t(*args) + REDUCE


def d(**items):
    """A dict of pickled values."""
    return EMPTY_DICT + b''.join(s(k) + v + SETITEM for k, v in items.items())


def odict():
    return call(g('collections', 'OrderedDict'))


def dtype(code, copy=True):
    return call(g('numpy', 'dtype'), s(code), FALSE, TRUE if copy else FALSE)


def storage(key='0', numel=4, location='cpu', kind='FloatStorage'):
    """A persistent id as torch writes it, and BINPERSID."""
    return t(s('storage'), g('torch', kind), s(key), s(location),
             i(numel)) + BINPERSID


def tensor(
        size=(4, ),
        stride=(1, ),
        offset=0,
        numel=4,
        requires_grad=False,
        hooks=None):
    """``_rebuild_tensor_v2`` of the 16-byte float storage ``data/0``."""
    return call(
        g('torch._utils',
          '_rebuild_tensor_v2'), storage(numel=numel), i(offset),
        t(*map(i, size)), t(*map(i, stride)), TRUE if requires_grad else FALSE,
        hooks or odict())


def reconstruct():
    return call(
        g('numpy.core.multiarray', '_reconstruct'), g('numpy', 'ndarray'),
        t(i(0)), by(b'b'))


def checkpoint(obj):
    """``{'state_dict': {'w': tensor}, 'meta': obj}``: a checkpoint with
    a sound tensor, and the payload under ``meta``."""
    return (PROTO + EMPTY_DICT + s('state_dict') + d(w=tensor()) + SETITEM +
            s('meta') + obj + SETITEM + STOP)


# ------------------------------------------------------------ the files

#: The 16 bytes of ``data/0``: four float32 (0, 1, 2, 3).
FOUR_FLOATS = struct.pack('<4f', 0, 1, 2, 3)


def torch_zip(path,
              pkl,
              records=None,
              prefix='archive',
              compress=None,
              extra=()):
    """A zip checkpoint as torch writes it (stored records under one
    folder), with ``data.pkl`` = ``pkl``; ``records`` replaces the other
    records, ``extra`` adds ``(ZipInfo or name, bytes, compress_type)``."""
    records = dict(records if records is not None else {
        'data/0': FOUR_FLOATS,
        'byteorder': b'little',
        'version': b'3\n'
    })
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr(
            f'{prefix}/data.pkl',
            pkl,
            compress_type=compress or zipfile.ZIP_STORED)
        for name, data in records.items():
            archive.writestr(f'{prefix}/{name}', data)
        for name, data, kind in extra:
            archive.writestr(name, data, compress_type=kind)


def write(pkl, **kwargs):
    """A builder writing ``torch_zip(path, pkl)``."""
    return lambda path, marker: torch_zip(path, pkl, **kwargs)


def with_marker(make):
    """A builder whose pickle needs the marker path."""
    return lambda path, marker: torch_zip(path, make(str(marker)))


def _system(marker):
    return checkpoint(call(g('os', 'system'), s(f'touch {marker}')))


def _posix_system(marker):
    return checkpoint(call(g('posix', 'system'), s(f'touch {marker}')))


def _exec(marker):
    return checkpoint(
        call(g('builtins', 'exec'), s(f'open({marker!r}, "w").write("x")')))


def _dotted(marker):
    # protocol 4 resolves dotted names attribute by attribute
    return checkpoint(
        call(g('torch', 'serialization.os.system'), s(f'touch {marker}')))


def _dotted_history(marker):
    # the class-wide statistics table, reached by a dotted name
    return checkpoint(
        g('mmengine.logging.history_buffer',
          'HistoryBuffer._statistics_methods'))


def _ext(marker):
    # EXT1 0xF1: the runner registers it as os.system (as a library could)
    return checkpoint(b'\x82\xf1' + t(s(f'touch {marker}')) + REDUCE)


def _inst(marker):
    # protocol 0 INST: module, name and a call of it with the marked args
    return checkpoint(MARK + s(f'touch {marker}') + b'ios\nsystem\n')


def _obj_ndarray(marker):
    # OBJ: numpy.ndarray((1000,), float64, 8 bytes)
    return checkpoint(MARK + g('numpy', 'ndarray') + t(i(1000)) + dtype('f8') +
                      by(b'A' * 8) + b'o')


def _getattr_builtins(marker):
    # getattr(getattr, '__self__') is the builtins module, one step
    # from exec
    return checkpoint(
        call(
            g('builtins', 'getattr'), g('builtins', 'getattr'), s('__self__')))


def _build_on_class(marker):
    # BUILD on HistoryBuffer itself: replace 'mean' for the whole process
    return checkpoint(
        g('mmengine.logging.history_buffer', 'HistoryBuffer') + d(
            mean=call(
                g('builtins', 'getattr'),
                g('mmengine.logging.history_buffer', 'HistoryBuffer'), s(
                    'max'))) + BUILD)


def _build_on_function(marker):
    return checkpoint(
        g('torch._utils', '_rebuild_tensor_v2') + d(pwned=TRUE) + BUILD)


def _build_on_module(marker):
    return checkpoint(g('torch', 'serialization') + d(pwned=TRUE) + BUILD)


def _build_on_dtype_value(marker):
    # torch.float32 is an allowed global value
    return checkpoint(g('torch', 'float32') + t(NONE, d(pwned=TRUE)) + BUILD)


def _ndarray_direct(marker):
    # the SIGSEGV: an object array of wild pointers
    return checkpoint(
        call(g('numpy', 'ndarray'), t(i(1)), dtype('O8'), by(b'A' * 8)))


def _ndarray_newobj(marker):
    return checkpoint(
        g('numpy', 'ndarray') + t(t(i(1000)), dtype('f8'), by(b'A' * 8)) +
        NEWOBJ)


def _object_dtype(marker):
    return checkpoint(dtype('O8'))


def _object_array_build(marker):
    # numpy's own path with an object dtype: a list state of objects
    return checkpoint(
        reconstruct() +
        t(i(1), t(i(1)), dtype('O8'), FALSE, EMPTY_LIST + s('x') + APPEND) +
        BUILD)


def _object_array_bytes(marker):
    return checkpoint(reconstruct() +
                      t(i(1), t(i(1)), dtype('O8'), FALSE, by(b'A' * 8)) +
                      BUILD)


def _array_short_data(marker):
    # 1000 float64 from 8 bytes: numpy would read past the buffer
    return checkpoint(reconstruct() +
                      t(i(1), t(i(1000)), dtype('f8'), FALSE, by(b'A' * 8)) +
                      BUILD)


def _structured_dtype(marker):
    # a dtype whose state adds a field 4096 bytes past its 8-byte items
    return checkpoint(
        dtype('f8') + t(
            i(3), s('|'), NONE, t(s('a')), d(
                a=t(dtype('f8'), i(4096))), i(8), i(1), i(16)) + BUILD)


def _shared_dtype(marker):
    # copy=False: BUILD would make numpy's shared float64 big-endian
    return checkpoint(
        dtype('f8', copy=False) +
        t(i(3), s('>'), NONE, NONE, NONE, i(-1), i(-1), i(0)) + BUILD)


def _object_scalar(marker):
    # scalar(dtype('O'), x) returns x: a way to any object
    return checkpoint(
        call(
            g('numpy.core.multiarray', 'scalar'), dtype('O8'),
            g('torch._utils', '_rebuild_tensor_v2')))


def _scalar_short(marker):
    # a float64 scalar from 1 byte
    return checkpoint(
        call(g('numpy.core.multiarray', 'scalar'), dtype('f8'), by(b'A')))


def _history_statistics(marker):
    # HistoryBuffer state whose statistics_methods maps mean -> max:
    # __setstate__ writes it into the class-wide table
    hb = g('mmengine.logging.history_buffer', 'HistoryBuffer')
    stat = call(g('builtins', 'getattr'), hb, s('max'))
    return checkpoint(hb + EMPTY_TUPLE + NEWOBJ +
                      d(max_length=i(10), statistics_methods=d(mean=stat)) +
                      BUILD)


def _history_call(marker):
    # HistoryBuffer(log_history=[tensor], ...) runs np.array on it
    return checkpoint(
        call(
            g('mmengine.logging.history_buffer', 'HistoryBuffer'),
            EMPTY_LIST + tensor() + APPEND, EMPTY_LIST + i(1) + APPEND))


def _history_array_interface(marker):
    # a HistoryBuffer whose history is an object with an
    # __array_interface__ pointing outside any buffer
    hb = g('mmengine.logging.history_buffer', 'HistoryBuffer')
    inner = hb + EMPTY_TUPLE + NEWOBJ + d(
        __array_interface__=d(
            shape=t(i(64)),
            typestr=s('<u8'),
            version=i(3),
            data=t(i(2**40), FALSE))) + BUILD
    return checkpoint(hb + EMPTY_TUPLE + NEWOBJ +
                      d(_log_history=inner, _count_history=inner) + BUILD)


def _tensor_array_interface(marker):
    # a tensor with an __array_interface__ attribute
    state = d(
        __array_interface__=d(
            shape=t(i(64)),
            typestr=s('<u8'),
            version=i(3),
            data=t(i(2**40), FALSE)))
    return checkpoint(
        call(
            g('torch._tensor', '_rebuild_from_type_v2'),
            g('torch._utils', '_rebuild_tensor_v2'), g('torch', 'Tensor'),
            t(storage(), i(0), t(i(4)), t(i(1)), FALSE, odict()), state))


def _rebuild_from_type_any(marker):
    # _rebuild_from_type_v2 calling numpy.ndarray and building it
    return checkpoint(
        call(
            g('torch._tensor', '_rebuild_from_type_v2'), g('numpy', 'ndarray'),
            g('numpy', 'ndarray'), t(t(i(1000)), dtype('f8'), by(b'A' * 8)),
            d()))


def _tensor_too_big(marker):
    return checkpoint(tensor(size=(1000, ), stride=(1, )))


def _tensor_offset(marker):
    return checkpoint(tensor(offset=2**40))


def _tensor_negative_stride(marker):
    return checkpoint(tensor(size=(4, ), stride=(-1, ), offset=3))


def _tensor_overflow(marker):
    return checkpoint(tensor(size=(2**31, ) * 3, stride=(0, ) * 3))


def _tensor_rank(marker):
    return checkpoint(tensor(size=(1, ) * 100, stride=(1, ) * 100))


def _tensor_hooks(marker):
    hooks = odict() + i(0) + g('os', 'system') + SETITEM
    return checkpoint(tensor(hooks=hooks))


def _storage_numel(path, marker):
    # 10**6 float32 declared for the 16-byte record data/1: torch 2.1.2
    # makes a 4 MB storage of it, reads past the record, SIGSEGV (torch
    # 2.14 checks the size)
    torch_zip(
        path,
        checkpoint(
            call(
                g('torch._utils', '_rebuild_tensor_v2'),
                storage(key='1', numel=10**6), i(0), t(i(10**6)), t(i(1)),
                FALSE, odict())),
        records={
            'data/0': FOUR_FLOATS,
            'data/1': FOUR_FLOATS,
            'byteorder': b'little',
            'version': b'3\n'
        })


def _storage_missing(marker):
    return checkpoint(storage(key='7'))


def _storage_key_path(marker):
    return checkpoint(storage(key='../data.pkl'))


def _storage_location(marker):
    return checkpoint(storage(location='evil'))


def _pid_not_tuple(marker):
    return checkpoint(s('storage') + BINPERSID)


def _pid_module(marker):
    return checkpoint(t(s('module'), g('os', 'system')) + BINPERSID)


def _bytes_alloc(marker):
    return checkpoint(call(g('builtins', 'bytes'), i(2**40)))


def _codec(marker):
    return checkpoint(call(g('_codecs', 'encode'), s('x'), s('zlib_codec')))


def _set_of_view(marker):
    # a set iterating a 2**40-element view (stride 0) of 4 bytes
    return checkpoint(
        call(g('builtins', 'set'), tensor(size=(2**40, ), stride=(0, ))))


def _device(marker):
    return checkpoint(call(g('torch', 'device'), s('cuda'), i(2**40)))


def _layout(marker):
    return checkpoint(call(g('torch.serialization', '_get_layout'), s('nope')))


def _unhashable_key(marker):
    # {numpy array: 1}: TypeError inside the unpickler
    arr = reconstruct() + t(i(1), t(i(1)), dtype('f8'), FALSE, by(
        b'\0' * 8)) + BUILD
    return checkpoint(EMPTY_DICT + arr + i(1) + SETITEM)


def _bad_memo(marker):
    return checkpoint(b'h\x09')  # BINGET of an empty memo slot


def _long_text(marker):
    return checkpoint(b'L' + b'9' * 100000 + b'L\n')


def _setitem_on_tensor(marker):
    return checkpoint(tensor() + i(0) + i(7) + SETITEM)


def _deep_nesting(marker):
    # 200000 nested lists: iterative to load, the trashcan frees them
    n = 200000
    return checkpoint(EMPTY_LIST * n + APPEND * (n - 1))


def _self_reference(marker):
    # l = []; l.append(l)
    return checkpoint(EMPTY_LIST + b'q\x05' + b'h\x05' + APPEND)


def _sound(marker):
    return checkpoint(d(iter=i(3)))


def _torchscript(path, marker):
    torch_zip(
        path,
        checkpoint(NONE),
        records={
            'data/0': FOUR_FLOATS,
            'constants.pkl': PROTO + NONE + STOP,
            'version': b'3\n'
        })


def _duplicate(path, marker):
    # two data.pkl: the first (what torch reads) runs os.system, the
    # second (what zipfile.testzip checks) is sound
    torch_zip(path, _system(marker))
    with zipfile.ZipFile(path, 'a') as archive, warnings.catch_warnings():
        warnings.simplefilter('ignore')  # zipfile: 'Duplicate name'
        archive.writestr('archive/data.pkl', _sound(marker))


def _duplicate_case(path, marker):
    torch_zip(
        path,
        _sound(marker),
        extra=[('archive/DATA.pkl', _system(marker), zipfile.ZIP_STORED)])


def _bzip2_bomb(path, marker):
    # a record torch never reads, 16 MiB of zeros in ~50 bytes of bzip2
    torch_zip(
        path,
        _sound(marker),
        extra=[('archive/extra', b'\0' * (16 << 20), zipfile.ZIP_BZIP2)])


def _lzma_record(path, marker):
    torch_zip(path, _sound(marker), compress=zipfile.ZIP_LZMA)


def _deflate_bomb(path, marker):
    # 100 MiB of zeros deflated to ~100 KB: over 4 x size + 64 MiB
    torch_zip(
        path,
        _sound(marker),
        extra=[('archive/extra', b'\0' * (100 << 20), zipfile.ZIP_DEFLATED)])


def _declared_size(path, marker):
    # a stored record whose central directory entry claims ~4 GB
    torch_zip(path, _sound(marker))
    data = bytearray(open(path, 'rb').read())
    central = data.rindex(b'PK\x01\x02')  # the last record's entry
    struct.pack_into('<I', data, central + 24, 0xFFFFFFF0)  # its size
    open(path, 'wb').write(bytes(data))


def _crc_flip(path, marker):
    torch_zip(path, _sound(marker))
    data = bytearray(open(path, 'rb').read())
    pos = data.index(FOUR_FLOATS)
    data[pos + 5] ^= 0xFF
    open(path, 'wb').write(bytes(data))


def _truncated(path, marker):
    torch_zip(path, _sound(marker))
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


def _tar_fifo(path, marker):
    # torch's legacy tar format; 'storages' is a FIFO, which torch's
    # legacy reader extracts and opens: blocks forever
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        for name, data in (('sys_info', PROTO + d() + STOP),
                           ('pickle', PROTO + NONE + STOP)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        fifo = tarfile.TarInfo('storages')
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)


def _legacy_pickle(path, marker):
    # torch's legacy non-tar format: magic number, protocol, sys info, ...
    with open(path, 'wb') as f:
        f.write(PROTO + i(0x1950a86a20f9469cfc6c) + STOP + PROTO + i(1001) +
                STOP + _system(marker))


def _garbage(path, marker):
    with open(path, 'wb') as f:
        f.write(os.urandom(64) + b'not a checkpoint')


def _later_scheme(path, marker):
    torch_zip(path, _system(marker))


def _ndarray_numeric(marker):
    # numpy.ndarray((1000,), float64, 8 bytes) called directly
    return checkpoint(
        call(g('numpy', 'ndarray'), t(i(1000)), dtype('f8'), by(b'A' * 8)))


def runner_like(path, marker=None):
    """A checkpoint as an mmengine Runner writes it (torch.save of the
    same objects: meta with numpy values and random states, state_dict,
    AdamW state, a LinearLR scheduler, the MessageHub's state with
    HistoryBuffers): must load."""
    import uuid

    import numpy as np
    import torch
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance(f'hostile_{uuid.uuid4().hex}')
    for v in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', v)
    hub.update_info('iter', 3)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optim.step()
    sched = torch.optim.lr_scheduler.LinearLR(optim)
    torch.save(
        dict(
            meta=dict(
                iter=3,
                seed=np.int64(1),
                epoch_loss=np.float32(2.5),
                rng=np.random.get_state(),
                torch_rng=torch.get_rng_state()),
            state_dict=model.state_dict(),
            optimizer=optim.state_dict(),
            param_schedulers=[sched.state_dict()],
            message_hub=hub.state_dict()), path)


PAYLOADS = [
    # name, builder, expected, entry
    ('reduce_os_system', with_marker(_system), 'refused', 'mmengine'),
    ('reduce_posix_system', with_marker(_posix_system), 'refused', 'model'),
    ('reduce_exec', with_marker(_exec), 'refused', 'safe'),
    ('dotted_name', with_marker(_dotted), 'refused', 'mmengine'),
    ('dotted_class_state', with_marker(_dotted_history), 'refused',
     'mmengine'),
    ('ext_opcode', with_marker(_ext), 'refused', 'mmengine'),
    ('inst_opcode', with_marker(_inst), 'refused', 'mmengine'),
    ('obj_opcode_ndarray', with_marker(_obj_ndarray), 'refused', 'mmengine'),
    ('getattr_builtins', with_marker(_getattr_builtins), 'refused',
     'mmengine'),
    ('build_on_class', with_marker(_build_on_class), 'refused', 'mmengine'),
    ('build_on_function', with_marker(_build_on_function), 'refused',
     'mmengine'),
    ('build_on_module', with_marker(_build_on_module), 'refused', 'mmengine'),
    ('build_on_dtype_value', with_marker(_build_on_dtype_value), 'refused',
     'mmengine'),
    ('numpy_ndarray_call', with_marker(_ndarray_direct), 'refused', 'safe'),
    ('numpy_ndarray_call_numeric', with_marker(_ndarray_numeric), 'refused',
     'safe'),
    ('numpy_ndarray_newobj', with_marker(_ndarray_newobj), 'refused', 'safe'),
    ('numpy_object_dtype', with_marker(_object_dtype), 'refused', 'safe'),
    ('numpy_object_array_list', with_marker(_object_array_build), 'refused',
     'safe'),
    ('numpy_object_array_bytes', with_marker(_object_array_bytes), 'refused',
     'safe'),
    ('numpy_short_buffer', with_marker(_array_short_data), 'refused', 'safe'),
    ('numpy_structured_dtype', with_marker(_structured_dtype), 'refused',
     'safe'),
    ('numpy_shared_dtype_state', with_marker(_shared_dtype), 'refused',
     'safe'),
    ('numpy_object_scalar', with_marker(_object_scalar), 'refused', 'safe'),
    ('numpy_scalar_short', with_marker(_scalar_short), 'refused', 'safe'),
    ('history_statistics_table', with_marker(_history_statistics), 'refused',
     'mmengine'),
    ('history_direct_call', with_marker(_history_call), 'refused', 'mmengine'),
    ('history_array_interface', with_marker(_history_array_interface),
     'refused', 'mmengine'),
    ('tensor_array_interface', with_marker(_tensor_array_interface), 'refused',
     'mmengine'),
    ('rebuild_from_type_any_call', with_marker(_rebuild_from_type_any),
     'refused', 'mmengine'),
    ('tensor_size_out_of_range', with_marker(_tensor_too_big), 'refused',
     'mmengine'),
    ('tensor_offset_out_of_range', with_marker(_tensor_offset), 'refused',
     'mmengine'),
    ('tensor_negative_stride', with_marker(_tensor_negative_stride), 'refused',
     'mmengine'),
    ('tensor_size_overflow', with_marker(_tensor_overflow), 'refused',
     'mmengine'),
    ('tensor_rank_100', with_marker(_tensor_rank), 'refused', 'mmengine'),
    ('tensor_backward_hooks', with_marker(_tensor_hooks), 'refused',
     'mmengine'),
    ('storage_numel_past_record', _storage_numel, 'refused', 'safe'),
    ('storage_missing_record', with_marker(_storage_missing), 'refused',
     'safe'),
    ('storage_key_path', with_marker(_storage_key_path), 'refused', 'safe'),
    ('storage_location', with_marker(_storage_location), 'refused', 'safe'),
    ('persistent_id_not_tuple', with_marker(_pid_not_tuple), 'refused',
     'safe'),
    ('persistent_id_module', with_marker(_pid_module), 'refused', 'safe'),
    ('bytes_allocation', with_marker(_bytes_alloc), 'refused', 'mmengine'),
    ('codecs_other_codec', with_marker(_codec), 'refused', 'mmengine'),
    ('set_of_huge_view', with_marker(_set_of_view), 'refused', 'mmengine'),
    ('device_index', with_marker(_device), 'refused', 'mmengine'),
    ('layout_name', with_marker(_layout), 'refused', 'mmengine'),
    ('unhashable_key', with_marker(_unhashable_key), 'refused', 'mmengine'),
    ('bad_memo', with_marker(_bad_memo), 'refused', 'mmengine'),
    ('long_text_int', with_marker(_long_text), 'refused', 'mmengine'),
    ('setitem_on_tensor', with_marker(_setitem_on_tensor), 'refused',
     'mmengine'),
    ('deep_nesting', with_marker(_deep_nesting), 'loads', 'mmengine'),
    ('self_reference', with_marker(_self_reference), 'loads', 'mmengine'),
    ('torchscript_archive', _torchscript, 'refused', 'mmengine'),
    ('zip_duplicate_records', _duplicate, 'refused', 'mmengine'),
    ('zip_duplicate_case', _duplicate_case, 'refused', 'mmengine'),
    ('zip_bzip2_bomb', _bzip2_bomb, 'refused', 'mmengine'),
    ('zip_lzma_record', _lzma_record, 'refused', 'mmengine'),
    ('zip_deflate_bomb', _deflate_bomb, 'refused', 'mmengine'),
    ('zip_declared_size', _declared_size, 'refused', 'mmengine'),
    ('zip_crc_flip', _crc_flip, 'refused', 'mmengine'),
    ('zip_truncated', _truncated, 'refused', 'mmengine'),
    ('legacy_tar_fifo', _tar_fifo, 'refused', 'mmengine'),
    ('legacy_pickle_format', _legacy_pickle, 'refused', 'mmengine'),
    ('not_a_checkpoint', _garbage, 'refused', 'mmengine'),
    ('scheme_registered_later', _later_scheme, 'refused', 'scheme'),
    ('safe_load_context', with_marker(_system), 'refused', 'context'),
    ('runner_like_sound', runner_like, 'loads', 'mmengine'),
    ('sound_through_model_path', write(_sound('')), 'loads', 'model'),
]
