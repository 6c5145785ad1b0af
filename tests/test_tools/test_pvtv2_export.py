"""Export of a MixMAE-pretrained PVTv2 backbone to the original release
format (tools/model_converters/mixmae_pvtv2_to_release.py): the file must
load into mmdet's own PVTv2 configs through ``init_cfg.checkpoint``.

mmdet loads it with ``strict=False`` and only logs mismatches, so these
tests compare every tensor the mmdet model ends up with to the source.
"""
import copy
import hashlib
import importlib.util
import logging
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import mmdet
import pytest
import torch
from mmdet.models.backbones.pvt import PyramidVisionTransformerV2, pvt_convert
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger

ROOT = Path(__file__).resolve().parents[2]
CONVERTERS = ROOT / 'tools' / 'model_converters'
SCRIPT = CONVERTERS / 'mixmae_pvtv2_to_release.py'
PVT_CONFIGS = Path(osp.dirname(mmdet.__file__)) / '.mim' / 'configs' / 'pvt'


def _tool(name):
    """Import a tools/model_converters script as a module."""
    spec = importlib.util.spec_from_file_location(name,
                                                  CONVERTERS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export = _tool('mixmae_pvtv2_to_release')


@pytest.fixture
def log():
    """Messages of mmengine's current logger during the test."""
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def _backbone_cfg(config, **override):
    """``model.backbone`` of an mmdet PVTv2 config file, as a ConfigDict
    (mmdet's init_weights reads ``init_cfg.checkpoint`` as an attribute)."""
    cfg = Config.fromfile(str(PVT_CONFIGS / config)).model.backbone
    cfg.update(override)
    return ConfigDict(cfg)


def _random_backbone(cfg):
    """The config's backbone with random values everywhere, LN included."""
    cfg = cfg.copy()
    cfg.pop('init_cfg')
    model = MODELS.build(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model.state_dict()


def _runner_checkpoint(backbone, path):
    """A Runner checkpoint of a pretraining model around ``backbone``."""
    state_dict = {f'backbone.{k}': v for k, v in backbone.items()}
    state_dict['neck.decoder_embed.weight'] = torch.randn(16, 8)
    state_dict['head.loss.weight'] = torch.ones(1)
    torch.save(
        dict(
            state_dict=state_dict,
            meta=dict(epoch=300, iter=1200, mmengine_version='0.10.7'),
            optimizer=dict(state={}, param_groups=[dict(lr=1e-3)]),
            param_schedulers=[dict(last_epoch=300)]), path)
    return path


def _mismatches(model, source):
    """Keys of ``model.state_dict()`` whose tensor is not exactly the
    source's (missing keys on either side included)."""
    own = model.state_dict()
    return sorted(set(own) ^ set(source)) + [
        k for k in own if k in source and (
            own[k].shape != source[k].shape
            or not torch.equal(own[k], source[k]))
    ]


def _load_into_mmdet(cfg, checkpoint):
    """Build the config's backbone with only ``init_cfg.checkpoint``
    changed and run mmdet's own init_weights."""
    cfg = copy.deepcopy(cfg)
    cfg.init_cfg.checkpoint = str(checkpoint)
    model = MODELS.build(cfg)
    assert isinstance(model, PyramidVisionTransformerV2)
    model.init_weights()
    return model


@pytest.mark.parametrize(
    'config,override',
    [('retinanet_pvtv2-b0_fpn_1x_coco.py', {}),
     ('retinanet_pvtv2-b5_fpn_1x_coco.py', dict(embed_dims=8))],
    ids=['b0', 'b5-narrow'])
def test_export_loads_into_mmdet_config(tmp_path, capsys, config, override):
    """CLI on a Runner checkpoint -> file -> mmdet config with only
    init_cfg.checkpoint changed -> every tensor is the source's."""
    cfg = _backbone_cfg(config, **override)
    assert cfg.init_cfg.checkpoint.startswith('https://github.com/whai362')
    source = _random_backbone(cfg)
    ckpt = _runner_checkpoint(source, tmp_path / 'epoch_300.pth')

    assert export.main([str(ckpt), str(tmp_path / 'out' / 'pvt.pth')]) == 0
    printed = capsys.readouterr().out
    files = list((tmp_path / 'out').iterdir())
    assert len(files) == 1  # no leftover temporary file
    out = files[0]
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.name == f'pvt-{sha[:8]}.pth'
    assert f'converted: {len(source)}' in printed
    for dropped in ('[field] meta', '[field] optimizer',
                    '[field] param_schedulers', 'neck.decoder_embed.weight',
                    'head.loss.weight'):
        assert f'  {dropped}\n' in printed
    assert 'round trip: exact' in printed
    assert f"dict(checkpoint='{out}')" in printed

    # a plain dict of tensors, readable without any allow-list
    release = torch.load(out, map_location='cpu', weights_only=True)
    assert type(release) is dict
    assert all(type(v) is torch.Tensor for v in release.values())
    assert 'block1.0.attn.kv.weight' in release and not any(
        k.startswith(('backbone.', 'layers.', 'head')) for k in release)

    model = _load_into_mmdet(cfg, out)
    assert _mismatches(model, source) == []


def test_mmdet_silently_loads_a_bad_file_the_tensor_check_catches(
        tmp_path, log):
    """Control: a file with one tensor misshaped and one renamed loads into
    mmdet without an error (a log warning only, the two tensors keep their
    random init); only the tensor-by-tensor comparison finds them."""
    cfg = _backbone_cfg('retinanet_pvtv2-b0_fpn_1x_coco.py')
    source = _random_backbone(cfg)
    release, _ = export.pvtv2_to_release(source, prefix='')
    release['block1.0.mlp.fc1.weight'] = release[
        'block1.0.mlp.fc1.weight'][:-1]
    release['norm1.gamma'] = release.pop('norm1.weight')
    path = tmp_path / 'bad.pth'
    torch.save(release, path)

    model = _load_into_mmdet(cfg, path)  # no exception
    warning = '\n'.join(log)
    assert 'size mismatch for layers.0.1.0.ffn.layers.0.weight' in warning
    assert 'unexpected key in source state_dict: layers.0.2.gamma' in warning
    assert _mismatches(model, source) == [
        'layers.0.1.0.ffn.layers.0.weight', 'layers.0.2.weight'
    ]


def test_cli_refuses_an_export_mmdet_would_not_invert(
        tmp_path, capsys, monkeypatch):
    """The CLI's own check: mmdet's pvt_convert of the file must give back
    the source, else nothing is written."""
    cfg = _backbone_cfg('retinanet_pvtv2-b0_fpn_1x_coco.py',
                        num_layers=[1, 1, 1, 1])
    ckpt = _runner_checkpoint(_random_backbone(cfg), tmp_path / 'in.pth')
    right = export.pvtv2_to_release

    def swapped_kv(*args):  # a mapping bug: k and v halves exchanged
        out, report = right(*args)
        kv = out['block2.0.attn.kv.weight']
        out['block2.0.attn.kv.weight'] = kv.roll(kv.shape[0] // 2, 0)
        return out, report

    monkeypatch.setattr(export, 'pvtv2_to_release', swapped_kv)
    assert export.main([str(ckpt), str(tmp_path / 'out.pth')]) == 1
    assert 'differs from the source at ' \
        "['layers.1.1.0.attn.attn.in_proj_weight']" in capsys.readouterr().err
    assert not list(tmp_path.glob('out*'))


def test_cli_bare_state_dict_without_sha_suffix(tmp_path, capsys):
    arch = dict(embed_dims=8, num_layers=[1, 1, 1, 1])
    source = _random_backbone(
        ConfigDict(type='PyramidVisionTransformerV2', init_cfg=None, **arch))
    torch.save(source, tmp_path / 'bare.pth')
    dst = tmp_path / 'release.pth'
    argv = [str(tmp_path / 'bare.pth'), str(dst), '--quiet']
    # the default prefix finds nothing and says which to use
    assert export.main(argv) == 1
    assert "use prefix ''" in capsys.readouterr().err
    assert export.main(argv + ['--prefix', '', '--no-sha-suffix']) == 0
    assert f'converted: {len(source)}\n' in capsys.readouterr().out
    release = torch.load(dst, weights_only=True)
    model = PyramidVisionTransformerV2(**arch)
    model.load_state_dict(pvt_convert(release), strict=True)
    assert _mismatches(model, source) == []


def test_cli_unknown_keys_exit_nonzero_listing_them(tmp_path):
    cfg = _backbone_cfg('retinanet_pvtv2-b0_fpn_1x_coco.py',
                        embed_dims=8, num_layers=[1, 1, 1, 1])
    source = _random_backbone(cfg)
    source['mask_token'] = torch.zeros(1, 1, 8)
    source['layers.0.1.0.attn.qkv.weight'] = torch.zeros(24, 8)
    ckpt = _runner_checkpoint(source, tmp_path / 'epoch_1.pth')
    dst = tmp_path / 'out.pth'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(ckpt), str(dst)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '2 unknown key(s) in a PVTv2 checkpoint' in result.stderr
    for key in ('backbone.mask_token',
                'backbone.layers.0.1.0.attn.qkv.weight'):
        assert re.search(rf'^  {re.escape(key)}$', result.stderr, re.M)
        # the printed report lists them under unexpected too
        assert f'  {key}\n' in result.stdout
    assert 'unexpected: 2' in result.stdout
    assert not list(tmp_path.glob('out*'))
