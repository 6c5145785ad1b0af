"""Every config under configs/ parses; every model in them builds."""
from pathlib import Path

import importlib

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
    if '_base_' not in p.parts)
_built = {}


def test_configs_found():
    assert len(CONFIGS) >= 13


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(str(ROOT / path))
    scope = {'mmdet': 'mmdet', 'mmseg': 'mmseg'}.get(
        Path(path).parent.name, 'mmpretrain')
    assert cfg.default_scope == scope
    assert 'import ' not in (ROOT / path).read_text()  # mmengine 0.10.7 bug
    key = repr(cfg.model.to_dict())
    if key not in _built:  # build each distinct model once
        importlib.import_module(f'{scope}.models')
        registry = importlib.import_module(f'{scope}.registry').MODELS
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(cfg.model)
        _built[key] = sum(p.numel() for p in model.parameters())
    assert _built[key] > 0
    if Path(path).name.startswith('mixmae_swin-base-w14'):
        # mmpretrain's metafile: 114.67M for the Swin-B/W14 pretraining model,
        # counting its two frozen sin-cos tables, which are derived here.
        frozen = 56 * 56 * 128 + 7 * 7 * 512
        assert abs(_built[key] + frozen - 114.67e6) < 0.01e6, _built[key]


def _without_scope(cfg):
    """A config dict without the ``_scope_`` keys mmengine adds to what a
    ``mmdet::`` base brings in."""
    if isinstance(cfg, dict):
        return {k: _without_scope(v) for k, v in cfg.items() if k != '_scope_'}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_scope(v) for v in cfg)
    return cfg


def test_pvtv2_retinanet_is_mmdets_config_but_the_checkpoint():
    """The RetinaNet benchmark is mmdet's own PVTv2-b2 config with only the
    backbone's checkpoint changed (to the release-format export)."""
    import mmdet
    ours = Config.fromfile(
        str(ROOT / 'configs/mixmae/benchmarks/mmdet/'
            'retinanet_pvtv2-b2-mixmae-pre_fpn_1x_coco.py')).to_dict()
    theirs = Config.fromfile(
        str(Path(mmdet.__file__).parent / '.mim' / 'configs' / 'pvt' /
            'retinanet_pvtv2-b2_fpn_1x_coco.py')).to_dict()
    ours, theirs = _without_scope(ours), _without_scope(theirs)
    init = theirs['model']['backbone']['init_cfg']
    assert init['checkpoint'].endswith('/pvt_v2_b2.pth')
    assert ours['model']['backbone']['init_cfg']['checkpoint'].startswith(
        'work_dirs/mixmae_pvtv2-b2/')
    init['checkpoint'] = ours['model']['backbone']['init_cfg']['checkpoint']
    assert ours == theirs


@pytest.mark.parametrize('path', [
    p for p in CONFIGS
    if 'pvtv2-b2' in p and Path(p).parent.name in ('mmdet', 'mmseg')
])
def test_pvtv2_dense_configs_wire_the_channels(path):
    """The b2 detection/segmentation configs (not run by the hand-off tests,
    which use the tiny arch): neck and heads take the backbone's channels
    (64, 128, 320, 512) on a small input."""
    cfg = Config.fromfile(str(ROOT / path))
    scope = Path(path).parent.name
    importlib.import_module(f'{scope}.models')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model).eval()
    assert type(model.backbone).__name__ == 'PyramidVisionTransformerV2'
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, 64, 64))
        if scope == 'mmdet':
            head = model.rpn_head if hasattr(model, 'rpn_head') \
                else model.bbox_head
            assert len(head(feats)[0]) == len(feats) == 5
        else:
            assert [f.shape[1] for f in feats] == [64, 128, 320, 512]
            assert model.decode_head(feats).shape[:2] == (1, 150)
            assert model.auxiliary_head(feats).shape[:2] == (1, 150)
