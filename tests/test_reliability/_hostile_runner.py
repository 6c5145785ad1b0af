"""Child process of ``test_hostile_checkpoints.py``.

``python _hostile_runner.py MANIFEST``: imports torch, mmengine and
``mixmae_mm`` once, then loads each crafted file of the manifest in a
process forked for it, under a memory limit (``RLIMIT_AS``: 1 GiB above
what the runner maps) and a time limit, and writes one JSON report per
file: how the process ended (``exited`` / ``signal N`` / ``timeout``), the
outcome of the load (``refused`` with our error, ``loads``, or ``error``
with any other exception), whether the marker file exists, and what
process-wide state changed (see :func:`process_state`). A crash of one
load cannot hide the others.

Then, in the runner itself, property-based fuzzing (hypothesis) of a
sound checkpoint under the same memory limit: every mutated file must be
refused with our error or load, and leave the process state unchanged;
the report holds the shrunk failing example, if any. The file being
loaded is written to disk first, so that a crash names it.
"""
import builtins
import copyreg
import gc
import json
import os
import pickle
import resource
import signal
import sys
import time

MEMORY_LIMIT = 1 << 30  # bytes the load may map on top of the runner's
TIME_LIMIT = 20  # seconds per load


def _vm_size():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmSize:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmSize in /proc/self/status')


def _limit_memory():
    limit = _vm_size() + MEMORY_LIMIT
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def setup():
    """Import everything once; return the load entries."""
    import numpy as np
    import torch
    torch.set_num_threads(1)
    import mixmae_mm  # noqa: F401  (registers the safe loaders)
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import load_checkpoint
    from mmengine.runner.checkpoint import CheckpointLoader

    from mixmae_mm.engine import safe_load_context, safe_torch_load

    # a scheme registered after `import mixmae_mm`, as a user's plugin
    # would; its loader calls plain torch.load
    CheckpointLoader.register_scheme(
        prefixes='hostile://',
        loader=lambda name, map_location=None: torch.load(
            name[len('hostile://'):],
            map_location=map_location,
            weights_only=False))
    # a copyreg extension code some library registered (EXT1 0xF1), and
    # used once in this process: copyreg caches what it resolved
    copyreg.add_extension('os', 'system', 0xF1)
    assert pickle.loads(b'\x80\x02\x82\xf1.') is os.system

    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(4))

    def in_context(path):
        with safe_load_context(path):
            return torch.load(path, weights_only=False)

    entries = dict(
        mmengine=lambda p: CheckpointLoader.load_checkpoint(
            p, map_location='cpu', logger='silent'),
        safe=safe_torch_load,
        model=lambda p: load_checkpoint(
            model, p, map_location='cpu', strict=False, logger='silent'),
        scheme=lambda p: CheckpointLoader.load_checkpoint(
            'hostile://' + p, logger='silent'),
        context=in_context,
        # controls: what the harness sees without the safe loader
        unrestricted=lambda p: torch.load(
            p, weights_only=False, map_location='cpu'),
    )
    HistoryBuffer()  # the class-wide statistics table, as in any run
    # codecs the pickle module itself uses for some opcodes (protocol 0
    # strings...): imported lazily, but never chosen by the file
    for codec in ('raw_unicode_escape', 'ascii', 'latin_1', 'utf_8', 'cp437',
                  'unicode_escape'):
        __import__(f'encodings.{codec}')
    return entries


def process_state():
    """What a load must not change in the process: the HistoryBuffer
    statistics table and class, identity and attributes of functions a
    pickle could reach, numpy's builtin dtypes, the imported modules."""
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer
    functions = {
        'torch.load': torch.load,
        'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,
        'torch.serialization._get_layout': torch.serialization._get_layout,
        'torch.Tensor.__setstate__': torch.Tensor.__setstate__,
        'numpy.dtype': np.dtype,
        'numpy.ndarray': np.ndarray,
        'builtins.getattr': builtins.getattr,
        'builtins.exec': builtins.exec,
        'os.system': os.system,
        'HistoryBuffer.mean': HistoryBuffer.mean,
    }
    state = {f'id {name}': id(fn) for name, fn in functions.items()}
    state.update({
        f'attributes {name}': sorted(getattr(fn, '__dict__', {}))
        for name, fn in functions.items()
    })
    state['HistoryBuffer._statistics_methods'] = {
        k: getattr(v, '__qualname__', repr(v))
        for k, v in HistoryBuffer._statistics_methods.items()
    }
    state['HistoryBuffer class'] = sorted(vars(HistoryBuffer))
    state['numpy builtin dtypes'] = [
        np.dtype(c).str for c in ('f8', 'f4', 'i8', 'u1', 'b1', 'c16')
    ] + [np.dtype(float).isnative]
    # (hypothesis imports parts of itself while it runs)
    state['modules'] = sorted(
        m for m in sys.modules if not m.startswith(('hypothesis', '_hypo')))
    return state


def _changes(before, after):
    out = []
    for key in before:
        if before[key] != after.get(key):
            if key == 'modules':
                out.append(
                    'new modules: ' +
                    ', '.join(sorted(set(after[key]) - set(before[key]))[:10]))
            else:
                out.append(f'{key}: {before[key]!r} -> {after.get(key)!r}')
    return out


def touch(obj, limit=20000):
    """Use what was loaded, as a training script would: walk containers
    (iteratively, at most ``limit`` objects: nesting may be deep or
    circular), read every element of small arrays and tensors."""
    import numpy as np
    import torch
    todo, seen = [obj], set()
    while todo and len(seen) < limit:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
        elif isinstance(item, np.ndarray) and item.size < 10**6:
            item.tolist()
        elif isinstance(item, torch.Tensor) and item.numel() <= 10**7:
            item.detach().clone()
        elif hasattr(item, '__dict__') and not isinstance(item, type):
            todo.extend(vars(item).values())


def load_once(entry, path, marker, snapshot):
    """Load ``path`` through ``entry``; the report of the module
    docstring (``status`` is added by the caller)."""
    from mixmae_mm.engine import CorruptCheckpointError, UnsafeCheckpointError
    report = {}
    try:
        obj = entry(path)
        touch(obj)
        report.update(outcome='loads', detail=type(obj).__name__)
        del obj
    except (UnsafeCheckpointError, CorruptCheckpointError) as err:
        report.update(
            outcome='refused',
            detail=f'{type(err).__name__}: {err}'[:1500],
            names_file=path in str(err))
    except BaseException as err:  # noqa: B036  (the report is the point)
        report.update(
            outcome='error', detail=f'{type(err).__name__}: {err}'[:1500])
    report['marker'] = os.path.exists(marker)
    report['state_changes'] = _changes(snapshot, process_state())
    return report


def _write(path, report):
    with open(path + '.tmp', 'w') as f:
        json.dump(report, f)
    os.replace(path + '.tmp', path)


def run_payloads(manifest, entries):
    # warm up the lazy imports of every path (zipfile's cp437 codec for
    # files not written by torch...)
    for path in manifest['warmup']:
        for name, entry in entries.items():
            if name != 'unrestricted':
                entry(path)
    gc.collect()
    snapshot = process_state()
    for item in manifest['payloads']:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the load, isolated
            try:
                _limit_memory()
                signal.alarm(TIME_LIMIT)
                report = load_once(entries[item['entry']], item['path'],
                                   item['marker'], snapshot)
                report['status'] = 'exited'
                report['seconds'] = round(time.monotonic() - start, 3)
                _write(item['result'], report)
            finally:
                os._exit(0)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > TIME_LIMIT + 10:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
                break
            time.sleep(0.005)
        if status is None or os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status) if status is not None else None
            _write(
                item['result'],
                dict(
                    status='timeout' if sig in (None, signal.SIGALRM) else
                    f'signal {signal.Signals(sig).name}',
                    outcome=None,
                    marker=os.path.exists(item['marker']),
                    seconds=round(time.monotonic() - start, 2)))


def run_fuzz(manifest, entries):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import _hostile_fuzz
    seed = open(manifest['seed'], 'rb').read()
    current = manifest['current']
    # warm up lazy imports: torch's zip and Python's (cp437 names)
    with open(current, 'wb') as f:
        f.write(_hostile_fuzz.zip_records(_hostile_fuzz.records_of(seed)))
    for path in (manifest['seed'], current):
        entries['safe'](path)
    gc.collect()
    snapshot = process_state()
    _limit_memory()
    outcomes = []

    @settings(
        max_examples=manifest['examples'],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data):
        mutated, how = _hostile_fuzz.mutate(seed, data)
        with open(current, 'wb') as f:  # names the file if this crashes
            f.write(mutated)
        signal.alarm(TIME_LIMIT)
        report = load_once(entries['safe'], current, current + '.marker',
                           snapshot)
        signal.alarm(0)
        outcomes.append(report['outcome'])
        assert report['outcome'] in ('refused', 'loads'), (how, report)
        assert report['state_changes'] == [], (how, report)
        if report['outcome'] == 'refused':
            assert report['names_file'], (how, report)

    try:
        fuzz()
    except Exception as err:  # hypothesis' shrunk failing example
        failure = f'{type(err).__name__}: {err}'[:4000]
    else:
        failure = None
    _write(
        manifest['result'],
        dict(
            status='exited',
            failure=failure,
            outcomes={o: outcomes.count(o)
                      for o in set(outcomes)}))


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    entries = setup()  # one import of torch, mmengine and mixmae_mm
    run_payloads(manifest, entries)
    run_fuzz(manifest['fuzz'], entries)
