"""Mutations of a sound checkpoint for the fuzzer of
``test_hostile_checkpoints.py`` (drawn with hypothesis in
``_hostile_runner.py fuzz``).

A mutation edits the bytes of ``data.pkl`` or of a storage record and
zips the records again with correct CRC-32 (so that the unpickler and the
storage checks see it, not only the CRC check), or edits the bytes of the
file itself (the zip checks see it). Edits: flip a byte, write a pickle
opcode or an interesting int, insert, delete or repeat a few bytes.
"""
import io
import struct
import zipfile

from hypothesis import strategies as st

#: Opcodes that call, build, fill, look up or persist: where a restricted
#: unpickler has to hold.
OPCODES = b'RbQ\x81\x92\x82\x83\x84ciosauh\x94q\x93.(t}]e\x8a\x8bJKX'

#: Ints that are sizes, counts and offsets at their limits.
INTS = (0, 1, -1, 4, 255, 2**16, 10**6, 2**31 - 1, -2**31)


def records_of(data):
    """The records of a zip checkpoint, in order: ``[(name, bytes)]``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(n, archive.read(n)) for n in archive.namelist()]


def zip_records(records):
    """A stored zip of ``records`` (fresh CRC-32s)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as archive:
        for name, blob in records:
            archive.writestr(name, blob)
    return out.getvalue()


def _edit(blob, data):
    """Apply 1-4 drawn edits to ``blob``; returns it and their names."""
    blob = bytearray(blob)
    done = []
    for _ in range(data.draw(st.integers(1, 4))):
        if not blob:
            break
        kind = data.draw(
            st.sampled_from(
                ['flip', 'opcode', 'int', 'insert', 'delete', 'repeat']))
        pos = data.draw(st.integers(0, len(blob) - 1))
        if kind == 'flip':
            blob[pos] ^= data.draw(st.integers(1, 255))
        elif kind == 'opcode':
            blob[pos] = data.draw(st.sampled_from(OPCODES))
        elif kind == 'int':
            value = struct.pack('<i', data.draw(st.sampled_from(INTS)))
            blob[pos:pos + 4] = value
        elif kind == 'insert':
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == 'delete':
            del blob[pos:pos + data.draw(st.integers(1, 16))]
        else:
            blob[pos:pos] = blob[pos:pos + data.draw(st.integers(1, 64))]
        done.append(f'{kind}@{pos}')
    return bytes(blob), done


def mutate(seed, data):
    """A mutated copy of the checkpoint ``seed`` and what was done."""
    target = data.draw(st.sampled_from(['data.pkl', 'storage', 'file']))
    if target == 'file':
        blob, done = _edit(seed, data)
        return blob, f'file: {done}'
    records = records_of(seed)
    names = [
        n for n, _ in records
        if (n.endswith('/data.pkl') if target == 'data.pkl' else '/data/' in n)
    ]
    name = data.draw(st.sampled_from(names))
    index = [n for n, _ in records].index(name)
    blob, done = _edit(records[index][1], data)
    records[index] = (name, blob)
    return zip_records(records), f'{name}: {done}'
