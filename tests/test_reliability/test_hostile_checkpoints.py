"""Crafted checkpoints against the safe loader: each is refused with our
error (naming the file and the reason) or loads harmlessly, in a child
process with a memory and a time limit that stays alive, runs no code of
the file (its marker file stays absent) and keeps its process-wide state
(HistoryBuffer's statistics table, numpy's builtin dtypes, functions a
pickle could reach, the imported modules).

The files are in ``_hostile_payloads.py``; ``_hostile_runner.py`` loads
each in its own forked process, so that a crash in one hides no other.
Controls load some of them with plain ``torch.load(weights_only=False)``
to show that the harness sees an exploit, a crash and a state change.
A property-based fuzzer mutates a Runner-like checkpoint.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _hostile_payloads as hp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNNER = HERE / '_hostile_runner.py'

#: What each refusal must say: the reason, not only our error's class.
REASONS = {
    'reduce_os_system': 'it pickles os.system',
    'reduce_posix_system': 'posix.system',
    'reduce_exec': 'builtins.exec',
    'dotted_name': 'torch.serialization.os.system',
    'dotted_class_state': 'HistoryBuffer._statistics_methods',
    'ext_opcode': 'global os.system is not in the allow-list',
    'inst_opcode': 'it pickles os.system',
    'obj_opcode_ndarray': 'calling ndarray is not allowed',
    'getattr_builtins': "'__self__') is not allowed",
    'build_on_class': 'setting the state of HistoryBuffer',
    'build_on_function': 'setting the state of _rebuild_tensor_v2',
    'build_on_module': 'torch.serialization',
    'build_on_dtype_value': 'setting the state of <dtype>',
    'numpy_ndarray_call': "numpy.dtype('O8') is not allowed",
    'numpy_ndarray_call_numeric': 'calling ndarray is not allowed',
    'numpy_ndarray_newobj': 'creating an instance of ndarray',
    'numpy_object_dtype': "numpy.dtype('O8') is not allowed",
    'numpy_object_array_list': "numpy.dtype('O8') is not allowed",
    'numpy_object_array_bytes': "numpy.dtype('O8') is not allowed",
    'numpy_short_buffer': 'numpy array data must be 8000 bytes',
    'numpy_structured_dtype': 'is not one numpy writes',
    'numpy_shared_dtype_state': 'only align=False, copy=True',
    'numpy_object_scalar': "numpy.dtype('O8') is not allowed",
    'numpy_scalar_short': 'needs 8 bytes',
    'history_statistics_table': 'statistics_methods may only hold',
    'history_direct_call': 'calling HistoryBuffer is not allowed',
    'history_array_interface': 'HistoryBuffer state must be a dict with',
    'tensor_array_interface': "attribute '__array_interface__'",
    'rebuild_from_type_any_call': 'may only call a tensor rebuild function',
    'tensor_size_out_of_range': 'reaches byte 4000 of a 16-byte storage',
    'tensor_offset_out_of_range': 'reaches byte 4398046511120',
    'tensor_negative_stride': 'tensor stride must be an int in [0',
    'tensor_size_overflow': 'has 2**62 or more elements',
    'tensor_rank_100': 'at most 64 ints',
    'tensor_backward_hooks': 'it pickles os.system',
    'storage_numel_past_record': 'storage 1 declares 1000000 elements',
    'storage_missing_record': 'record data/7 has no bytes',
    'storage_key_path': "storage key '../data.pkl' is not allowed",
    'storage_location': "storage location 'evil' is not a device",
    'persistent_id_not_tuple': "persistent id 'storage' is not allowed",
    'persistent_id_module': 'it pickles os.system',
    'bytes_allocation': 'bytes(1099511627776) is not allowed',
    'codecs_other_codec': "_codecs.encode('x', 'zlib_codec',)",
    'set_of_huge_view': 'set takes a list or tuple',
    'device_index': "torch.device('cuda', 1099511627776,) is not allowed",
    'layout_name': "unknown torch layout 'nope'",
    'unhashable_key': "TypeError: unhashable type: 'numpy.ndarray'",
    'bad_memo': 'Memo value not found at index 9',
    'long_text_int': 'holds a malformed pickle (ValueError',
    'setitem_on_tensor': 'filling a Tensor is not allowed',
    'torchscript_archive': 'TorchScript archive',
    'zip_duplicate_records': "two records named 'archive/data.pkl'",
    'zip_duplicate_case': "two records named 'archive/DATA.pkl'",
    'zip_bzip2_bomb': 'compressed with bzip2',
    'zip_lzma_record': 'compressed with lzma',
    'zip_deflate_bomb': 'a decompression bomb',
    'zip_declared_size': 'a decompression bomb',
    'zip_crc_flip': 'fails its CRC-32 check',
    'zip_truncated': 'is not a complete zip archive',
    'legacy_tar_fifo': "torch's legacy format",
    'legacy_pickle_format': "torch's legacy format",
    'not_a_checkpoint': 'is no torch checkpoint',
    'scheme_registered_later': 'it pickles os.system',
    'safe_load_context': 'it pickles os.system',
}

#: Examples the fuzzer draws (hypothesis, derandomized: the same ones
#: every run).
FUZZ_EXAMPLES = 50

#: (payload, what plain torch.load(weights_only=False) does to the
#: harness: the marker appears / the process dies / the state changes).
CONTROLS = [
    ('reduce_os_system', 'marker'),
    ('numpy_ndarray_call', 'crash'),
    ('history_statistics_table', 'state'),
]


@pytest.fixture(scope='module')
def reports(tmp_path_factory):
    """Every payload, the controls and the fuzzer, run by one runner
    process (one import of torch and mixmae_mm); ``{name: report}``, the
    fuzzer's under ``'fuzz'``, the runner's exit under ``'runner'``."""
    work = tmp_path_factory.mktemp('hostile')
    runs = [(name, build, entry) for name, build, _, entry in hp.PAYLOADS]
    builders = {p[0]: p[1] for p in hp.PAYLOADS}
    runs += [(f'control_{name}', builders[name], 'unrestricted')
             for name, _ in CONTROLS]
    items = []
    for name, build, entry in runs:
        path, marker = work / f'{name}.pth', work / f'{name}.marker'
        build(path, marker)
        items.append(
            dict(
                name=name,
                path=str(path),
                marker=str(marker),
                entry=entry,
                result=str(work / f'{name}.json')))
    # sound files, loaded first so that lazy imports do not count as
    # state changes: torch's writer and Python's zipfile (cp437 names)
    warmup = [work / 'warmup_runner.pth', work / 'warmup_zip.pth']
    hp.runner_like(warmup[0])
    hp.torch_zip(warmup[1], hp.checkpoint(hp.NONE))
    # the fuzzer's seed: a Runner-like checkpoint
    seed = work / 'fuzz_seed.pth'
    hp.runner_like(seed)
    fuzz = dict(
        seed=str(seed),
        examples=FUZZ_EXAMPLES,
        result=str(work / 'fuzz.json'),
        current=str(work / 'fuzz_current.pth'))
    manifest = work / 'manifest.json'
    manifest.write_text(
        json.dumps(
            dict(payloads=items, warmup=list(map(str, warmup)), fuzz=fuzz)))
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        [sys.executable, str(RUNNER),
         str(manifest)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    out = {
        'runner':
        dict(
            returncode=proc.returncode,
            output=(proc.stdout + proc.stderr)[-4000:])
    }
    for item in items + [dict(name='fuzz', result=fuzz['result'])]:
        path = Path(item['result'])
        if path.is_file():
            out[item['name']] = json.loads(path.read_text())
    return out


def test_at_least_30_crafted_files_every_refusal_has_its_reason():
    names = [p[0] for p in hp.PAYLOADS]
    assert len(set(names)) == len(names) >= 30
    refused = {p[0] for p in hp.PAYLOADS if p[2] == 'refused'}
    assert refused == set(REASONS)


@pytest.mark.parametrize(
    'name,expected', [(p[0], p[2]) for p in hp.PAYLOADS],
    ids=[p[0] for p in hp.PAYLOADS])
def test_crafted_checkpoint(reports, name, expected):
    assert name in reports, reports['runner']  # the runner died before
    report = reports[name]
    # alive: no signal death, no hang
    assert report['status'] == 'exited', report
    assert report['outcome'] == expected, report['detail']
    if expected == 'refused':
        assert report['names_file'], report['detail']
        assert REASONS[name] in report['detail'], report['detail']
    assert not report['marker'], 'the file ran code'
    assert report['state_changes'] == [], report['state_changes']


@pytest.mark.parametrize('name,effect', CONTROLS, ids=[c[0] for c in CONTROLS])
def test_harness_sees_what_unrestricted_loading_does(reports, name, effect):
    """Without the safe loader the same files run code, crash the process
    or change its state: the checks above can fail."""
    assert f'control_{name}' in reports, reports['runner']
    report = reports[f'control_{name}']
    if effect == 'marker':
        assert report['marker'], report
    elif effect == 'crash':
        assert report['status'].startswith('signal'), report
    else:
        assert report['status'] == 'exited', report
        assert any('_statistics_methods' in c
                   for c in report['state_changes']), report


def test_fuzzed_runner_checkpoints(reports):
    """Mutations of a Runner-like checkpoint (its data.pkl and storage
    records with fresh CRC-32s, or the file's bytes): each refused with our
    error naming the file, or loaded, with the process state unchanged."""
    assert reports['runner']['returncode'] == 0, reports['runner']
    fuzz = reports['fuzz']
    assert fuzz['failure'] is None, fuzz['failure']
    outcomes = fuzz['outcomes']
    # both kinds occur: the mutations reach the unpickler, not only the
    # CRC check, and some still load
    assert outcomes.get('refused', 0) > 0 and outcomes.get('loads', 0) > 0, \
        outcomes
    assert sum(outcomes.values()) >= FUZZ_EXAMPLES


def test_runner_like_checkpoint_round_trips(tmp_path):
    """The sound file of the suite loads with its values (the same check
    runs in the child above; here with the oracle torch itself)."""
    from mixmae_mm.engine import safe_torch_load
    path = tmp_path / 'ok.pth'
    hp.runner_like(path)
    ours = safe_torch_load(path)
    plain = torch.load(path, weights_only=False)
    assert torch.equal(ours['state_dict']['weight'],
                       plain['state_dict']['weight'])
    assert ours['optimizer']['state'][0]['step'] == \
        plain['optimizer']['state'][0]['step']
    buf = ours['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == plain['message_hub']['log_scalars'][
        'train/loss'].mean() == pytest.approx(7 / 3)
    assert (ours['meta']['rng'][1] == plain['meta']['rng'][1]).all()
