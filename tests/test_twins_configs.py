"""The Twins configs: mmseg's own recipes with only the checkpoint
changed, pretraining configs that swap only the encoder, and models that
build from each."""
import copy
from pathlib import Path

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mixmae_mm  # noqa: F401  (registers MixMAETwins)

ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / 'configs/mixmae'


def _resolved(path):
    return Config.fromfile(str(path)).to_dict()


def _without_scope(cfg, scope):
    """``cfg`` without the ``_scope_=scope`` marks that mmengine adds to
    every typed dict inherited through ``scope::`` (the same registry as
    the default scope, so no change in what is built)."""
    if isinstance(cfg, dict):
        return {k: _without_scope(v, scope) for k, v in cfg.items()
                if not (k == '_scope_' and v == scope)}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_scope(v, scope) for v in cfg)
    return cfg


@pytest.mark.parametrize('arch', ['svt-b', 'pcpvt-b'])
def test_mmseg_configs_are_mmseg_s_with_another_checkpoint(arch):
    name = f'twins_{arch}_uperhead_8xb2-160k_ade20k-512x512.py'
    ours = _resolved(CFG / 'benchmarks/mmseg' /
                     f'twins-{arch}-mixmae-pre_uperhead_8xb2-160k_'
                     f'ade20k-512x512.py')
    theirs = _resolved(Path(mmseg.__file__).parent / '.mim/configs/twins' /
                       name)
    ckpt = ours['model']['backbone']['init_cfg'].pop('checkpoint')
    assert ckpt == f'work_dirs/mixmae_twins-{arch}/{arch}_mixmae-mmseg.pth'
    assert theirs['model']['backbone']['init_cfg'].pop('checkpoint') != ckpt
    assert ours['default_scope'] == theirs['default_scope'] == 'mmseg'
    assert _without_scope(ours, 'mmseg') == theirs


@pytest.mark.parametrize('arch', ['svt-b', 'pcpvt-b'])
def test_pretraining_configs_swap_only_the_encoder(arch):
    """The Swin-B 300-epoch recipe with the encoder swapped; MixMAE fills
    in the decoder width from the encoder."""
    ours = _resolved(CFG / f'mixmae_twins-{arch}_16xb128-amp-coslr-300e_'
                     f'in1k.py')
    swin = _resolved(CFG / 'mixmae_swin-base-w14_16xb128-amp-coslr-300e_'
                     'in1k.py')
    assert ours['model'].pop('backbone') == dict(
        type='MixMAETwins', arch=arch, drop_path_rate=0.0, out_indices=(3, ))
    swin['model'].pop('backbone')
    assert ours == swin
    model = MODELS.build(dict(
        ours['model'],
        backbone=dict(type='MixMAETwins', arch=arch, out_indices=(3, ))))
    width = dict(svt=768, pcpvt=512)[arch.split('-')[0]]
    assert model.neck.in_channels == width == model.backbone.num_features[-1]


def test_demo_pretraining_config_trains_a_step():
    cfg = Config.fromfile(str(CFG / 'mixmae_twins-svt-tiny_1xb16-coslr-30e_'
                              'demo.py'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    batch = dict(inputs=torch.randint(0, 256, (4, 3, 128, 128),
                                      dtype=torch.uint8), data_samples=None)
    data = model.data_preprocessor(batch, True)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    grad = model.backbone.layers[0][0].attn.qkv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_classification_config_layer_ids():
    cfg = Config.fromfile(str(CFG / 'benchmarks/mmpretrain/twins-svt-b_'
                              'mixmae-pre_8xb128-amp-coslr-100e_in1k.py'))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.head.in_channels == model.backbone.num_features[-1] == 768
    # 24 blocks + stem + the rest: 26 ids, as Swin-B's
    assert model.backbone.get_layer_depth('backbone.x', 'backbone.') == \
        (24, 26)
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.75


def test_mmdet_config_builds_mmseg_s_svt_with_matching_neck():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(str(CFG / 'benchmarks/mmdet/mask-rcnn_twins-svt-b-'
                              'mixmae-pre_fpn_1x_coco.py'))
    import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model = DET_MODELS.build(model_cfg)
    assert type(model.backbone).__module__ == 'mmseg.models.backbones.twins'
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(cfg.model.neck.in_channels)
