"""Safe checkpoint loading (weights_only=True + explicit allow-list) on
every mmengine load path."""
import argparse
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        _load_checkpoint_with_prefix)
from torch.utils.data import Dataset

import _payloads
import mixmae_mm  # noqa: F401  (registers the safe loaders)
from mixmae_mm.engine import checkpoint as safe
from mixmae_mm.engine import (UnsafeCheckpointError, safe_torch_load,
                              trusted_checkpoint_globals)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Runners set mmengine's DefaultScope ('mmengine'); later tests that
    build from mmpretrain's registries must not inherit it."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


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
    # the breakage this fixes: torch >= 2.6 refuses mmengine's own ckpt
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_ckpt, weights_only=True)
    found = set(torch.serialization.get_unsafe_globals_in_checkpoint(
        str(runner_ckpt)))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found
    assert 'numpy.core.multiarray._reconstruct' in found
    # every global the Runner pickles is on the allow-list
    allowed = {
        g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
        for g in safe.SAFE_GLOBALS
    }
    assert found <= allowed, found - allowed


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
    from mmengine.runner import checkpoint as mme_ckpt
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
        assert loader is safe.load_from_local
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


def test_refusal_names_the_global_and_the_opt_in(tmp_path):
    marker = tmp_path / 'marker.txt'
    ckpt = _save(dict(meta=_payloads.FunctionPayload(marker)),
                 tmp_path / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(ckpt)
    msg = str(info.value)
    assert '_payloads.write_marker' in msg and ckpt in msg
    assert 'MIXMAE_TRUSTED_GLOBALS' in msg
    assert 'never falls back to weights_only=False' in msg
    assert not marker.exists()


def test_getattr_is_restricted_to_history_buffer_stats(tmp_path):
    ckpt = _save(dict(meta=_payloads.GetattrPayload()), tmp_path / 'g.pth')
    with pytest.raises(UnsafeCheckpointError, match='not allowed'):
        _load_checkpoint(ckpt)
    # the legitimate use still works
    ok = _save(dict(f=HistoryBuffer.mean), tmp_path / 'ok.pth')
    assert _load_checkpoint(ok)['f'] is HistoryBuffer.mean


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


def test_allow_list_is_scoped_to_our_loads(runner_ckpt):
    before = set(torch.serialization.get_safe_globals())
    assert HistoryBuffer not in before
    safe_torch_load(str(runner_ckpt))
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(pickle.UnpicklingError):  # plain torch.load: unchanged
        torch.load(runner_ckpt, weights_only=True)


def test_trusting_an_unknown_name_fails_clearly():
    with pytest.raises(ValueError, match='module.qualname'):
        with trusted_checkpoint_globals(['no_such_module.Thing']):
            pass


def test_wrapped_remote_scheme_uses_the_allow_list(runner_ckpt, tmp_path):
    """Non-local schemes (http, open-mmlab, s3...) run mmengine's loader
    inside the allow-list context; emulated by a loader calling
    torch.load with torch's default (weights_only=True on torch>=2.6)."""
    wrapped = safe._wrap_scheme(lambda f, map_location=None: torch.load(f))
    assert wrapped(str(runner_ckpt))['meta']['iter'] == 2
    marker = tmp_path / 'marker.txt'
    evil = _save(dict(meta=_payloads.ExecPayload(marker)), tmp_path / 'e.pth')
    with pytest.raises(UnsafeCheckpointError):
        wrapped(evil)
    assert not marker.exists()


@pytest.mark.slow
def test_custom_imports_registers_for_mmdet_and_mmseg(runner_ckpt, tmp_path):
    """A mmdet / mmseg run that imports mixmae_mm only through
    custom_imports loads Runner checkpoints safely."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mixmae_mm'], "
                   'allow_failed_imports=False)\n')
    marker = tmp_path / 'marker.txt'
    evil = _save(dict(meta=_payloads.ExecPayload(marker)), tmp_path / 'e.pth')
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
    assert 'UNPATCHED_REFUSED' in res.stdout  # the bug without mixmae_mm
    assert 'mmdet OK' in res.stdout and 'mmseg OK' in res.stdout
    assert not marker.exists()


def test_train_py_config_key_opts_in(tmp_path, monkeypatch):
    """tools/train.py: trusted_checkpoint_globals in a config."""
    import importlib.util

    from mmengine.config import Config
    monkeypatch.delenv('MIXMAE_TRUSTED_GLOBALS', raising=False)
    monkeypatch.setattr(safe, '_trusted', {})  # undo the process-wide trust
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
