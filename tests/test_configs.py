"""Every config under configs/ is one of those listed here, parses, and
every model in them builds."""
from pathlib import Path

import importlib

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = Path(__file__).resolve().parents[1]
#: The configs this project ships, written out by hand: a config added,
#: renamed or lost must change this list (and model-index.yml, see
#: test_model_index.py).
EXPECTED = {
    'configs/mixmae': [
        'mixmae_pvtv2-b2_16xb128-amp-coslr-300e_in1k.py',
        'mixmae_pvtv2-b5_16xb128-amp-coslr-300e_in1k.py',
        'mixmae_pvtv2-tiny_1xb16-coslr-30e_demo.py',
        'mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py',
        'mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k.py',
        'mixmae_swin-base-w14_16xb128-amp-coslr-900e_in1k.py',
        'mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py',
        'mixmae_swin-large-w14_16xb128-amp-coslr-600e_in1k.py',
        'mixmae_swin-large-w14_16xb128-amp-coslr-900e_in1k.py',
        'mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py',
        'mixmae_twins-pcpvt-b_16xb128-amp-coslr-300e_in1k.py',
        'mixmae_twins-svt-b_16xb128-amp-coslr-300e_in1k.py',
        'mixmae_twins-svt-tiny_1xb16-coslr-30e_demo.py',
    ],
    'configs/mixmae/benchmarks/mmpretrain': [
        'pvtv2-b2_mixmae-pre_8xb128-amp-coslr-100e_in1k.py',
        'pvtv2-tiny_mixmae-pre_1xb16-coslr-20e_demo.py',
        'swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py',
        'swin-base-w16_mixmae-pre_8xb128-amp-coslr-100e_in1k-384px.py',
        'swin-tiny-w8_mixmae-pre_1xb16-coslr-20e_demo.py',
        'twins-svt-b_mixmae-pre_8xb128-amp-coslr-100e_in1k.py',
        'twins-svt-tiny_mixmae-pre_1xb16-coslr-20e_demo.py',
    ],
    'configs/mixmae/benchmarks/mmdet': [
        'mask-rcnn_pvtv2-b2-mixmae-pre_fpn_1x_coco.py',
        'mask-rcnn_swin-b-p4-w14-mixmae-pre_fpn_amp-1x_coco.py',
        'mask-rcnn_swin-b-p4-w14-mixmae-pre_fpn_amp-ms-crop-3x_coco.py',
        'mask-rcnn_swin-tiny-w8-mixmae-pre_fpn_demo_coco.py',
        'retinanet_pvtv2-b2-mixmae-pre_fpn_1x_coco.py',
        'retinanet_pvtv2-tiny-mixmae-pre_fpn_demo_coco.py',
        'mask-rcnn_twins-svt-b-mixmae-pre_fpn_1x_coco.py',
        'mask-rcnn_twins-svt-tiny-mixmae-pre_fpn_demo_coco.py',
    ],
    'configs/mixmae/benchmarks/mmseg': [
        'pvtv2-b2-mixmae-pre_upernet_8xb2-amp-160k_ade20k-512x512.py',
        'pvtv2-tiny-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py',
        'swin-base-patch4-window14-mixmae-pre_upernet_8xb2-amp-160k_'
        'ade20k-512x512.py',
        'swin-tiny-w8-mixmae-pre_upernet_1xb4-120i_demo-ade20k-128x128.py',
        'twins-pcpvt-b-mixmae-pre_uperhead_8xb2-160k_ade20k-512x512.py',
        'twins-svt-b-mixmae-pre_uperhead_8xb2-160k_ade20k-512x512.py',
        'twins-svt-tiny-mixmae-pre_uperhead_1xb4-120i_demo-ade20k-128x128.py',
    ],
    'configs/mixmae/toy': [
        'mixmae_pvtv2-toy_1xb32-1000i_toyshapes-96px.py',
        'mixmae_swin-toy-w6-d2242_1xb32-1000i_toyshapes-96px.py',
        'mixmae_swin-toy-w6-d2242_no-masked-attn_1xb32-1000i_'
        'toyshapes-96px.py',
        'mixmae_swin-toy-w6_1xb32-1000i_toyshapes-96px.py',
        'mixmae_swin-toy-w6_mask-stride4_1xb32-1000i_toyshapes-96px.py',
        'mixmae_swin-toy-w6_no-masked-attn_1xb32-1000i_toyshapes-96px.py',
        'mixmae_swin-toy-w6_single-recon_1xb32-1000i_toyshapes-96px.py',
        'mixmae_swin-toy-w8_1xb32-1000i_toyshapes-128px.py',
        'mixmae_swin-toy-w8_no-masked-attn_1xb32-1000i_toyshapes-128px.py',
        'pvtv2-toy_1xb32-100i_toyshapes-96px.py',
        'simmim_swin-toy-w6_1xb32-1000i_toyshapes-96px.py',
        'swin-toy-w6_1xb32-100i_toyshapes-96px.py',
        'mixmae_twins-svt-toy_1xb32-1000i_toyshapes-96px.py',
        'twins-svt-toy_1xb32-100i_toyshapes-96px.py',
    ],
}
#: The shared pieces the configs above inherit (not configs of their own).
BASES = [
    'configs/_base_/datasets/imagenet_bs128_mixmae.py',
    'configs/_base_/default_runtime.py',
    'configs/_base_/models/mixmae_swin-base.py',
    'configs/_base_/schedules/mixmae_adamw-amp-coslr_in1k.py',
]
CONFIGS = sorted(f'{folder}/{name}' for folder, names in EXPECTED.items()
                 for name in names)
_built = {}


def test_the_shipped_configs_are_the_listed_ones():
    found = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py'))
    assert len(CONFIGS) == 49 and len(set(CONFIGS)) == 49
    missing = sorted(set(CONFIGS + BASES) - set(found))
    unlisted = sorted(set(found) - set(CONFIGS + BASES))
    assert not missing, f'listed here but not in configs/: {missing}'
    assert not unlisted, f'in configs/ but not listed here: {unlisted}'


@pytest.mark.parametrize('path', BASES)
def test_base_files_parse(path):
    cfg = Config.fromfile(str(ROOT / path))
    assert len(cfg.keys()) > 0
    assert 'import ' not in (ROOT / path).read_text()  # mmengine 0.10.7 bug


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(str(ROOT / path))
    scope = {
        'mmdet': 'mmdet',
        'mmseg': 'mmseg'
    }.get(Path(path).parent.name, 'mmpretrain')
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
        str(
            Path(mmdet.__file__).parent / '.mim' / 'configs' / 'pvt' /
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
