"""Safe checkpoint loading (a restricted unpickler with an explicit
allow-list, the same on torch 2.1 and 2.14) on every mmengine load path."""
import argparse
import collections
import io
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
import threading
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner import checkpoint as mme_ckpt
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        _load_checkpoint_with_prefix)
from mmengine.utils import digit_version
from torch.utils.data import Dataset

import _payloads
import mixmae_mm  # noqa: F401  (registers the safe loaders)
from mixmae_mm.engine import safe_globals
from mixmae_mm.engine.checkpoint import (_wrap_scheme, load_from_local,
                                         safe_load_context)
from mixmae_mm.engine.safe_globals import (SAFE_GLOBALS,
                                           _history_buffer_getattr,
                                           allowed_globals,
                                           trusted_checkpoint_globals)
from mixmae_mm.engine.safe_unpickler import (UnsafeCheckpointError,
                                             safe_torch_load)

ROOT = Path(__file__).resolve().parents[2]

#: torch.load defaults to weights_only=True since torch 2.6.
TORCH_DEFAULTS_TO_WEIGHTS_ONLY = (
    digit_version(torch.__version__) >= digit_version('2.6.0'))


def globals_in_torch_save(path):
    """Oracle independent of the code under test: the GLOBAL opcodes of a
    zip checkpoint's data.pkl, written by torch.save with pickle protocol 2
    (so every global is a GLOBAL opcode and Python 2 names such as
    ``__builtin__`` are used). Storages are left out: torch's unpickler
    wrapper resolves them itself."""
    with zipfile.ZipFile(path) as archive:
        [data] = [n for n in archive.namelist() if n.endswith('/data.pkl')]
        ops = list(pickletools.genops(archive.read(data)))
    assert ops[0][0].name == 'PROTO' and ops[0][1] == 2
    assert not [op for op, _, _ in ops if op.name == 'STACK_GLOBAL']
    found = set()
    for op, arg, _ in ops:
        if op.name == 'GLOBAL':
            module, name = arg.split(' ')
            if 'Storage' not in name:
                found.add(f"{module.replace('__builtin__', 'builtins')}."
                          f'{name}')
    return found


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(3, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.backbone(torch.stack(inputs) if isinstance(inputs, list)
                            else inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyData(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((3, ), float(i)))


@pytest.fixture(scope='module')
def runner_ckpt(tmp_path_factory):
    """A real mmengine 0.10.7 Runner checkpoint (numpy objects in meta,
    HistoryBuffers in message_hub, optimizer and scheduler states)."""
    work = tmp_path_factory.mktemp('runner')
    saved = DefaultScope._instance_dict.copy()
    runner = Runner(
        model=ToyModel(),
        work_dir=str(work),
        experiment_name=f'safe_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='LinearLR', by_epoch=False, begin=0,
                             end=2),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
    )
    runner.train()
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
    path = work / 'iter_2.pth'
    assert path.is_file()
    return path


def test_runner_checkpoint_needs_more_than_torch_defaults(runner_ckpt):
    # torch's own weights_only allow-list refuses mmengine's Runner
    # checkpoints on every torch (the default load mode since torch 2.6)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_ckpt, weights_only=True)
    found = globals_in_torch_save(runner_ckpt)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found
    assert 'numpy.core.multiarray._reconstruct' in found
    assert 'builtins.getattr' in found  # HistoryBuffer.min ...
    # every global the Runner pickles is on the allow-list
    assert found <= set(SAFE_GLOBALS), found - set(SAFE_GLOBALS)
    # ... and nothing that runs code or touches the system is
    for name in SAFE_GLOBALS:
        assert not name.startswith(('os.', 'posix.', 'sys.', 'subprocess.'))
        assert name not in ('builtins.eval', 'builtins.exec')
    assert SAFE_GLOBALS['builtins.getattr'] is \
        _history_buffer_getattr


def test_loading_needs_no_torch_allow_list_api(runner_ckpt, tmp_path,
                                               monkeypatch):
    """The torch 2.4-2.6 allow-list APIs are absent on torch 2.1: the
    loader must not need them (removed here on any torch)."""
    for api in ('safe_globals', 'add_safe_globals', 'get_safe_globals',
                'clear_safe_globals', 'get_unsafe_globals_in_checkpoint'):
        monkeypatch.delattr(torch.serialization, api, raising=False)
    ckpt = safe_torch_load(str(runner_ckpt))
    assert ckpt['meta']['iter'] == 2
    assert np.isfinite(
        ckpt['message_hub']['log_scalars']['train/loss'].mean())
    evil = _save(dict(meta=_payloads.FunctionPayload(tmp_path / 'm')),
                 tmp_path / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match='write_marker'):
        _load_checkpoint(evil)
    assert not (tmp_path / 'm').exists()


def test_runner_checkpoint_loads_on_every_path(runner_ckpt):
    # Runner.resume / Runner.load_checkpoint (load_from) use this
    ckpt = _load_checkpoint(str(runner_ckpt), map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and np.isfinite(buf.mean())
    assert buf.statistics('min') <= buf.statistics('max')
    assert 'state' in ckpt['optimizer']
    assert ckpt['param_schedulers'][0]['last_step'] >= 1
    # init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')
    sd = _load_checkpoint_with_prefix('backbone.', str(runner_ckpt))
    assert set(sd) == {'weight', 'bias'}
    # init_cfg=dict(type='Pretrained', checkpoint=...) / load_checkpoint
    model = ToyModel()
    load_checkpoint(model, str(runner_ckpt), map_location='cpu')
    assert torch.equal(model.backbone.weight,
                       ckpt['state_dict']['backbone.weight'])
    # mmengine's PretrainedInit through a model's init_cfg, with prefix
    lin = torch.nn.Linear(3, 2)
    from mmengine.model.weight_init import PretrainedInit
    PretrainedInit(checkpoint=str(runner_ckpt), prefix='backbone.')(lin)
    assert torch.equal(lin.bias, ckpt['state_dict']['backbone.bias'])
    # direct callers of mmengine.runner.checkpoint.load_from_local
    assert mme_ckpt.load_from_local(str(runner_ckpt))['meta']['iter'] == 2


def test_resume_from_runner_checkpoint(runner_ckpt, tmp_path):
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        experiment_name=f'safe_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='LinearLR', by_epoch=False, begin=0,
                             end=2),
        train_cfg=dict(by_epoch=False, max_iters=3),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=10)),
        load_from=str(runner_ckpt),
        resume=True,
    )
    runner.train()
    assert runner.iter == 3  # resumed at 2, trained one more


def test_scheme_matching_routes_local_paths_to_safe_loader(tmp_path):
    # '' sorts last among the prefixes (reverse lexicographic) and matches
    # every path no URL scheme claims
    for path in [str(tmp_path / 'a.pth'), 'rel/a.pth', '~/a.pth']:
        loader = CheckpointLoader._get_checkpoint_loader(path)
        assert loader is load_from_local
    for url in ['https://x/a.pth', 'open-mmlab://x', 's3://b/a.pth']:
        loader = CheckpointLoader._get_checkpoint_loader(url)
        assert getattr(loader, '_mixmae_safe', False), url


def _save(obj, path, zipfile=True):
    torch.save(obj, path, _use_new_zipfile_serialization=zipfile)
    return str(path)


@pytest.mark.parametrize('payload_cls', [
    _payloads.ExecPayload, _payloads.FunctionPayload,
    _payloads.SystemPayload
])
@pytest.mark.parametrize('zipfile', [True, False])
def test_code_running_pickle_is_refused(tmp_path, payload_cls, zipfile):
    marker = tmp_path / 'marker.txt'
    ckpt = _save(
        dict(state_dict={'w': torch.ones(2)}, meta=payload_cls(marker)),
        tmp_path / 'evil.pth', zipfile)
    with pytest.raises(UnsafeCheckpointError, match='Refused to load'):
        _load_checkpoint(ckpt)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(ToyModel(), ckpt)  # init_cfg Pretrained path
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint_with_prefix('backbone.', ckpt)
    assert not marker.exists()
    if payload_cls is not _payloads.SystemPayload:
        # control: an unrestricted unpickler does run the payload
        pickle.loads(pickle.dumps(payload_cls(marker)))
        assert marker.read_text() == 'pwned'


def test_refusal_names_every_refused_global_and_the_opt_in(tmp_path):
    marker = tmp_path / 'marker.txt'
    ckpt = _save(
        dict(meta=_payloads.FunctionPayload(marker),
             args=argparse.Namespace(lr=1.0)), tmp_path / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(ckpt)
    msg = str(info.value)
    assert ckpt in msg
    # all refused globals, not only the first one the unpickler met
    assert 'it pickles _payloads.write_marker, argparse.Namespace, which ' \
        'are not in the allow-list' in msg
    assert 'MIXMAE_TRUSTED_GLOBALS=_payloads.write_marker,' \
        'argparse.Namespace' in msg
    assert "trust_checkpoint_globals(['_payloads.write_marker," in msg
    assert 'trusted_checkpoint_globals=' in msg
    assert 'never falls back to weights_only=False' in msg
    assert not marker.exists()


def test_legacy_format_is_refused_before_torch_reads_it(tmp_path):
    """torch's legacy reader (tar members, declared storage sizes) is
    never reached, whatever the file holds."""
    sound = _save(dict(w=torch.ones(2)), tmp_path / 'sound.pth', zipfile=False)
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(sound)
    assert f'{sound} (' in str(info.value)
    assert "torch's legacy format" in str(info.value)
    assert 'save it again with torch.save' in str(info.value)
    # control: torch itself reads it
    assert torch.equal(
        torch.load(sound, weights_only=False)['w'], torch.ones(2))


def test_getattr_is_restricted_to_history_buffer_stats(tmp_path):
    ckpt = _save(dict(meta=_payloads.GetattrPayload()), tmp_path / 'g.pth')
    with pytest.raises(UnsafeCheckpointError, match='not allowed') as info:
        _load_checkpoint(ckpt)
    # not a missing allow-list entry: no opt-in is offered
    assert 'No opt-in' in str(info.value)
    # the legitimate use still works
    ok = _save(dict(f=HistoryBuffer.mean), tmp_path / 'ok.pth')
    assert _load_checkpoint(ok)['f'] is HistoryBuffer.mean


def test_build_on_an_allowed_global_is_refused(tmp_path):
    """BUILD on a class or function would change it for the whole process
    with allow-listed globals only."""
    target = torch._utils._rebuild_tensor_v2
    data = pickle.dumps(dict(x=_payloads.BuildOnGlobalPayload()), 2)
    ckpt = _save(dict(x=_payloads.BuildOnGlobalPayload()), tmp_path / 'b.pth')

    # control: an unpickler restricted by the same allow-list, but with the
    # C unpickler's unrestricted BUILD, changes torch
    class NoBuildGuard(pickle.Unpickler):

        def find_class(self, module, name):
            module = {'__builtin__': 'builtins'}.get(module, module)
            return SAFE_GLOBALS[f'{module}.{name}']

    try:
        NoBuildGuard(io.BytesIO(data)).load()
        assert target.pwned is True
    finally:
        vars(target).pop('pwned', None)
    with pytest.raises(UnsafeCheckpointError, match='not allowed'):
        _load_checkpoint(ckpt)
    assert not hasattr(target, 'pwned')


def test_torchscript_archive_is_refused(tmp_path, monkeypatch):
    """torch.load hands TorchScript archives to torch.jit.load, whatever
    pickle_module says."""
    path = str(tmp_path / 'ts.pth')
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.warns(UserWarning, match='TorchScript'):  # the bypass
        assert isinstance(
            torch.load(path, pickle_module=pickle, weights_only=False),
            torch.jit.ScriptModule)
    calls = []
    monkeypatch.setattr(torch.jit, 'load', lambda *a, **k: calls.append(a))
    with pytest.raises(UnsafeCheckpointError, match='TorchScript') as info:
        _load_checkpoint(path)
    assert 'never falls back to weights_only=False' in str(info.value)
    with pytest.raises(UnsafeCheckpointError, match='TorchScript'):
        with open(path, 'rb') as f:
            safe_torch_load(io.BytesIO(f.read()))
    assert calls == []


def test_forced_weights_only_env_is_explained(runner_ckpt, monkeypatch):
    """TORCH_FORCE_WEIGHTS_ONLY_LOAD makes torch refuse every custom
    pickle_module; the error says so instead of torch's bare message."""
    monkeypatch.setenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(RuntimeError) as info:
        _load_checkpoint(str(runner_ckpt))
    msg = str(info.value)
    assert 'TORCH_FORCE_WEIGHTS_ONLY_LOAD=1' in msg and 'Unset' in msg
    assert str(runner_ckpt) in msg
    monkeypatch.delenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD')
    assert _load_checkpoint(str(runner_ckpt))['meta']['iter'] == 2


def test_namespace_checkpoint_needs_explicit_opt_in(tmp_path, monkeypatch):
    """Official MixMIM checkpoints pickle argparse.Namespace under 'args'."""
    monkeypatch.delenv('MIXMAE_TRUSTED_GLOBALS', raising=False)
    ckpt = _save(
        dict(model={'w': torch.ones(2)},
             args=argparse.Namespace(lr=1.5e-4, model='mixmim_base')),
        tmp_path / 'official.pth')
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(ckpt)
    msg = str(info.value)
    assert 'argparse.Namespace' in msg
    assert 'MIXMAE_TRUSTED_GLOBALS=argparse.Namespace' in msg
    # opt-in 1: environment variable (any tool, mmdet/mmseg included)
    monkeypatch.setenv('MIXMAE_TRUSTED_GLOBALS', 'argparse.Namespace')
    assert _load_checkpoint(ckpt)['args'].model == 'mixmim_base'
    monkeypatch.delenv('MIXMAE_TRUSTED_GLOBALS')
    # opt-in 2: scoped context manager
    with trusted_checkpoint_globals(['argparse.Namespace']):
        assert _load_checkpoint(ckpt)['args'].lr == 1.5e-4
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(ckpt)  # scope ended: refused again


def test_allow_list_is_scoped_to_our_loads(runner_ckpt, tmp_path):
    ns = _save(dict(args=argparse.Namespace(lr=2.0)), tmp_path / 'ns.pth')
    before = allowed_globals()
    with trusted_checkpoint_globals(['argparse.Namespace']):
        assert 'argparse.Namespace' in allowed_globals()
        assert safe_torch_load(ns)['args'].lr == 2.0
    assert allowed_globals() == before
    safe_torch_load(str(runner_ckpt))
    # torch's own modes are unchanged: weights_only=True still refuses
    # the Runner checkpoint, weights_only=False still loads anything
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_ckpt, weights_only=True)
    assert torch.load(ns, weights_only=False)['args'].lr == 2.0


def test_load_context_restricts_only_its_thread(tmp_path):
    """Inside safe_load_context, torch.load of this thread is restricted;
    other threads' torch.load calls are not touched."""
    ns = _save(dict(args=argparse.Namespace(lr=3.0)), tmp_path / 'ns.pth')
    results = []

    def other_thread():
        results.append(torch.load(ns, weights_only=False)['args'].lr)

    with pytest.raises(UnsafeCheckpointError, match='argparse.Namespace'):
        with safe_load_context('https://x/ns.pth'):
            worker = threading.Thread(target=other_thread)
            worker.start()
            worker.join()
            torch.load(ns, weights_only=False)
    assert results == [3.0]
    assert torch.load(ns, weights_only=False)['args'].lr == 3.0


def test_trusting_an_unknown_name_fails_clearly():
    with pytest.raises(ValueError, match='module.qualname'):
        with trusted_checkpoint_globals(['no_such_module.Thing']):
            pass


@pytest.mark.parametrize('name', ['os.system', 'posix.system',
                                  'builtins.exec', 'builtins.getattr'])
def test_code_running_globals_cannot_be_trusted(name, monkeypatch):
    with pytest.raises(ValueError, match='cannot be a trusted'):
        with trusted_checkpoint_globals([name]):
            pass
    monkeypatch.setenv('MIXMAE_TRUSTED_GLOBALS', name)
    with pytest.raises(ValueError, match='cannot be a trusted'):
        allowed_globals()


@pytest.mark.parametrize('weights_only', [None, True, False])
def test_wrapped_remote_scheme_uses_the_allow_list(runner_ckpt, tmp_path,
                                                   weights_only):
    """Non-local schemes (http, open-mmlab, s3...) run mmengine's loader
    inside the load context; emulated by loaders calling torch.load with
    torch's default, weights_only=True and weights_only=False (what
    torch.hub.load_state_dict_from_url passes)."""
    kwargs = {} if weights_only is None else dict(weights_only=weights_only)
    wrapped = _wrap_scheme(
        lambda f, map_location=None: torch.load(f, **kwargs))
    assert wrapped(str(runner_ckpt))['meta']['iter'] == 2
    marker = tmp_path / 'marker.txt'
    evil = _save(dict(meta=_payloads.ExecPayload(marker)), tmp_path / 'e.pth')
    with pytest.raises(UnsafeCheckpointError, match='builtins.exec'):
        wrapped(evil)
    assert not marker.exists()


def test_mmengine_http_and_openmmlab_schemes_are_restricted(
        runner_ckpt, tmp_path, monkeypatch):
    """mmengine's real loaders: https:// through
    torch.hub.load_state_dict_from_url (a cached file, no download), which
    calls torch.load(weights_only=False) on every torch; open-mmlab://
    with a local model-zoo entry, which calls plain torch.load."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    cache = Path(torch.hub.get_dir()) / 'checkpoints'
    cache.mkdir(parents=True)
    marker = tmp_path / 'marker.txt'
    (cache / 'runner.pth').write_bytes(runner_ckpt.read_bytes())
    _save(dict(meta=_payloads.FunctionPayload(marker)), cache / 'evil.pth')
    url = 'https://example.invalid/models/'
    ckpt = _load_checkpoint(url + 'runner.pth', map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(url + 'evil.pth')
    assert url + 'evil.pth' in str(info.value)
    assert '_payloads.write_marker' in str(info.value)
    assert not marker.exists()
    # open-mmlab:// resolving to a file under the mmengine home
    monkeypatch.setattr(mme_ckpt, 'get_external_models',
                        lambda: dict(evil='evil.pth', ok='runner.pth'))
    monkeypatch.setattr(mme_ckpt, '_get_mmengine_home', lambda: str(cache))
    assert _load_checkpoint('open-mmlab://ok')['meta']['iter'] == 2
    with pytest.raises(UnsafeCheckpointError, match='write_marker'):
        _load_checkpoint('open-mmlab://evil')
    assert not marker.exists()
    # control: mmengine's own http loader, outside the context, runs it
    original = mme_ckpt.load_from_http
    assert not getattr(original, '_mixmae_safe', False)
    original(url + 'evil.pth')
    assert marker.read_text() == 'pwned'


@pytest.mark.slow
def test_custom_imports_registers_for_mmdet_and_mmseg(runner_ckpt, tmp_path):
    """A mmdet / mmseg run that imports mixmae_mm only through
    custom_imports loads Runner checkpoints safely."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mixmae_mm'], "
                   'allow_failed_imports=False)\n')
    marker = tmp_path / 'marker.txt'
    evil = _save(dict(meta=_payloads.ExecPayload(marker)), tmp_path / 'e.pth')
    control_marker = tmp_path / 'control.txt'
    control = _save(
        dict(meta=_payloads.ExecPayload(control_marker)), tmp_path / 'c.pth')
    script = textwrap.dedent(f"""
        import pickle, sys
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmengine.runner.checkpoint import _load_checkpoint
        assert 'mixmae_mm' not in sys.modules
        try:
            _load_checkpoint({str(runner_ckpt)!r})
            print('UNPATCHED_LOADED')
        except pickle.UnpicklingError:
            print('UNPATCHED_REFUSED')
        try:
            _load_checkpoint({control!r})
        except pickle.UnpicklingError:
            pass
        Config.fromfile({str(cfg)!r})  # runs custom_imports
        for scope in ('mmdet', 'mmseg'):
            import importlib; importlib.import_module(scope + '.registry')
            with DefaultScope.overwrite_default_scope(scope):
                ck = _load_checkpoint({str(runner_ckpt)!r})
                assert ck['meta']['iter'] == 2
                try:
                    _load_checkpoint({evil!r})
                except pickle.UnpicklingError as e:
                    assert 'Refused to load' in str(e)
                    print(scope, 'OK')
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, '-c', script], cwd=tmp_path,
                         env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # the bug without mixmae_mm: torch >= 2.6 refuses mmengine's own
    # checkpoints, older torch runs the code of any checkpoint
    if TORCH_DEFAULTS_TO_WEIGHTS_ONLY:
        assert 'UNPATCHED_REFUSED' in res.stdout
        assert not control_marker.exists()
    else:
        assert 'UNPATCHED_LOADED' in res.stdout
        assert control_marker.read_text() == 'pwned'
    assert 'mmdet OK' in res.stdout and 'mmseg OK' in res.stdout
    assert not marker.exists()


def test_train_py_config_key_opts_in(tmp_path, monkeypatch):
    """tools/train.py: trusted_checkpoint_globals in a config."""
    import importlib.util

    from mmengine.config import Config
    monkeypatch.delenv('MIXMAE_TRUSTED_GLOBALS', raising=False)
    # undo the process-wide trust
    monkeypatch.setattr(safe_globals, '_trusted', {})
    spec = importlib.util.spec_from_file_location('train_tool',
                                                  ROOT / 'tools/train.py')
    train_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_tool)
    ckpt = _save(dict(args=argparse.Namespace(lr=1.0)), tmp_path / 'o.pth')
    train_tool.apply_checkpoint_trust(Config(dict()))
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(ckpt)
    train_tool.apply_checkpoint_trust(
        Config(dict(trusted_checkpoint_globals=['argparse.Namespace'])))
    assert _load_checkpoint(ckpt)['args'].lr == 1.0


@pytest.mark.parametrize('alias', [
    'glob.os.system', 'argparse._os.system', 'tempfile._os.system',
    'shutil.os.system', 'posixpath.os.system'
])
def test_trusted_alias_of_a_refused_function_is_refused(alias, monkeypatch):
    """An opt-in is checked as the object it names, not as its spelling:
    each alias reaches os.system."""
    import importlib
    module, *attrs = alias.split('.')
    obj = importlib.import_module(module)
    for attr in attrs:
        obj = getattr(obj, attr)
    assert obj is os.system  # the alias really reaches it
    with pytest.raises(ValueError, match='cannot be a trusted'):
        with trusted_checkpoint_globals([alias]):
            pass
    monkeypatch.setenv('MIXMAE_TRUSTED_GLOBALS', alias)
    with pytest.raises(ValueError, match='cannot be a trusted'):
        allowed_globals()


def test_trusted_class_is_allowed_under_the_name_pickle_writes(tmp_path):
    """Trusting torch.nn.Linear allows the name pickle writes for it,
    torch.nn.modules.linear.Linear: a pickled module loads."""
    layer = torch.nn.Linear(2, 3)
    path = _save(dict(layer=layer), tmp_path / 'module.pth')
    with pytest.raises(
            UnsafeCheckpointError, match='torch.nn.modules.linear.Linear'):
        safe_torch_load(path)
    with trusted_checkpoint_globals(['torch.nn.Linear']):
        assert allowed_globals()['torch.nn.modules.linear.Linear'] is \
            torch.nn.Linear
        loaded = safe_torch_load(path)['layer']
    assert torch.equal(loaded.weight, layer.weight)


def test_scheme_registered_after_import_is_routed(runner_ckpt, tmp_path):
    """A CheckpointLoader scheme registered after `import mixmae_mm`
    (its loader calls plain torch.load) loads through the allow-list."""
    marker = tmp_path / 'marker.txt'
    evil = _save(
        dict(meta=_payloads.FunctionPayload(marker)), tmp_path / 'evil.pth')
    prefix = f'later{uuid.uuid4().hex[:8]}://'
    CheckpointLoader.register_scheme(
        prefixes=prefix,
        loader=lambda name, map_location=None: torch.load(
            name[len(prefix):], map_location=map_location, weights_only=False))
    try:
        ckpt = CheckpointLoader.load_checkpoint(prefix + str(runner_ckpt))
        assert ckpt['meta']['iter'] == 2
        with pytest.raises(UnsafeCheckpointError) as info:
            CheckpointLoader.load_checkpoint(prefix + evil)
        assert prefix + evil in str(info.value)
        assert not marker.exists()
    finally:
        CheckpointLoader._schemes.pop(prefix)


def test_loading_leaves_history_buffer_class_state_alone(runner_ckpt):
    """HistoryBuffer.__setstate__ writes the class-wide statistics table;
    loads rebuild buffers without it."""
    HistoryBuffer()  # the table as any run has it
    before = dict(HistoryBuffer._statistics_methods)
    HistoryBuffer._statistics_methods['mean'] = HistoryBuffer.max
    try:
        buf = _load_checkpoint(
            str(runner_ckpt))['message_hub']['log_scalars']['train/loss']
        # mmengine's own __setstate__ would restore 'mean' from the file
        assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.max
        assert buf.max_length == 1000000 and len(buf._log_history) == 2
        assert buf.mean() == pytest.approx(buf._log_history.mean())
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(before)


def _zoo():
    """Checkpoints as mmpretrain / mmdet / mmseg publish them, and tensors
    of every layout torch.save writes."""
    base = torch.arange(24.).reshape(4, 6)
    tied = torch.nn.Parameter(torch.randn(3, 2))
    return {
        'mmpretrain':
        dict(
            meta=dict(
                mmengine_version='0.10.7',
                epoch=300,
                iter=10,
                dataset_meta=dict(classes=('cat', 'dog'))),
            state_dict=collections.OrderedDict([
                ('backbone.w', torch.randn(4, 4)),
                ('head.fc.bias', torch.zeros(2))
            ])),
        'mmdet':
        dict(
            meta=dict(
                CLASSES=('person', 'car'),
                env_info='sys.platform',
                config='model = dict(type="MaskRCNN")',
                seed=0,
                hook_msgs=dict(best_score=np.float64(0.5))),
            state_dict={
                'roi_head.w': torch.randn(2, 3).half(),
                'rpn.b': torch.randn(3).to(torch.bfloat16)
            }),
        'mmseg':
        dict(
            meta=dict(
                classes=['road', 'sky'],
                palette=[[128, 64, 128], [70, 130, 180]]),
            state_dict={
                'decode_head.conv_seg.weight': torch.randn(2, 4, 1, 1)
            }),
        'layouts':
        dict(
            view=base[1:, ::2],
            transposed=base.t(),
            scalar=torch.tensor(3.),
            empty=torch.empty(0, 5),
            ints=torch.arange(5),
            mask=torch.tensor([True, False]),
            complex=torch.randn(2, dtype=torch.cfloat),
            expanded=torch.ones(3, 1).expand(3, 4),
            tied=[tied, tied],
            grad=torch.nn.Parameter(torch.ones(2)),
            meta_device=torch.empty(2, 3, device='meta'),
            numpy=dict(
                f32=np.arange(6, dtype=np.float32).reshape(2, 3),
                be=np.arange(3, dtype='>i4'),
                fortran=np.asfortranarray(np.ones((2, 3))),
                bools=np.array([True, False]),
                scalar=np.int16(7))),
    }


@pytest.mark.parametrize('style', ['mmpretrain', 'mmdet', 'mmseg', 'layouts'])
def test_ordinary_checkpoints_load_as_torch_loads_them(tmp_path, style):
    path = _save(_zoo()[style], tmp_path / f'{style}.pth')
    ours = safe_torch_load(path)
    plain = torch.load(path, weights_only=False)  # the oracle

    def same(a, b):
        assert type(a) is type(b), (a, b)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.stride() == b.stride() and a.device == b.device
            if a.device.type != 'meta':
                assert torch.equal(a, b)
        elif isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b)
            assert a.flags.f_contiguous == b.flags.f_contiguous
        elif isinstance(a, dict):
            assert list(a) == list(b)
            for k in a:
                same(a[k], b[k])
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        else:
            assert a == b

    same(ours, plain)
    if style == 'layouts':  # storage sharing survives
        assert ours['tied'][0] is ours['tied'][1]
        assert ours['view'].untyped_storage().data_ptr() == \
            ours['transposed'].untyped_storage().data_ptr()
