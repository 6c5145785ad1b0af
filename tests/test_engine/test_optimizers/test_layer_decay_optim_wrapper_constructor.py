"""The layer-decay constructor on the B arch against a hand-written table,
and on mmdet / mmseg models."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS

D = 0.7  # official fine-tuning decay


@pytest.fixture(scope='module')
def groups():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='MixMAESwin', arch='base'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10,
                      in_channels=1024)))
    wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
            constructor='MixMAELayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=D, flat_decay_mult=0.0)))
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    groups['_names'] = [n for n, _ in model.named_parameters()]
    return groups


# name -> (official layer id; lr scale = D ** (25 - id), weight decay)
TABLE = {
    'backbone.patch_embed.proj.weight': (0, 0.05),
    'backbone.patch_embed.norm.weight': (0, 0.0),
    'backbone.layers.0.blocks.0.attn.qkv.weight': (1, 0.05),
    'backbone.layers.0.blocks.0.attn.qkv.bias': (1, 0.0),
    'backbone.layers.0.blocks.1.attn.relative_position_bias_table':
    (2, 0.05),
    'backbone.layers.0.downsample.reduction.weight': (3, 0.05),
    'backbone.layers.0.downsample.norm.bias': (3, 0.0),
    'backbone.layers.1.blocks.0.mlp.fc1.weight': (3, 0.05),
    'backbone.layers.1.blocks.1.norm2.weight': (4, 0.0),
    'backbone.layers.1.downsample.reduction.weight': (5, 0.05),
    'backbone.layers.2.blocks.0.attn.proj.weight': (5, 0.05),
    'backbone.layers.2.blocks.17.mlp.fc2.bias': (22, 0.0),
    'backbone.layers.2.downsample.reduction.weight': (23, 0.05),
    'backbone.layers.3.blocks.0.norm1.weight': (23, 0.0),
    'backbone.layers.3.blocks.1.mlp.fc2.weight': (24, 0.05),
    'backbone.norm3.weight': (24, 0.0),
    'head.fc.weight': (24, 0.05),  # official: the head is decayed by D**1
    'head.fc.bias': (24, 0.0),
}


@pytest.mark.parametrize('name', sorted(TABLE))
def test_b_arch_grouping(groups, name):
    layer_id, wd = TABLE[name]
    g = groups[name]
    assert g['layer_id'] == layer_id
    assert g['lr'] == pytest.approx(2e-3 * D**(25 - layer_id))
    assert g['weight_decay'] == wd


def test_every_parameter_is_grouped(groups):
    assert sorted(groups['_names']) == sorted(k for k in groups
                                              if k != '_names')


def _tiny_backbone(**kwargs):
    return dict(
        type='mmpretrain.MixMAESwin',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        window_size=(4, 4, 4, 2),
        out_indices=(0, 1, 2, 3),
        **kwargs)


def test_works_for_mmdet_and_mmseg_models():
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = DET.build(
            dict(
                type='RetinaNet',
                backbone=_tiny_backbone(),
                neck=dict(
                    type='FPN', in_channels=[32, 64, 128, 256],
                    out_channels=32, num_outs=5),
                bbox_head=dict(
                    type='RetinaHead', num_classes=3, in_channels=32,
                    feat_channels=32,
                    anchor_generator=dict(
                        type='AnchorGenerator', octave_base_scale=4,
                        scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                        strides=[8, 16, 32, 64, 128]),
                    bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                    loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                    loss_bbox=dict(type='L1Loss'))))
        wrapper = build_optim_wrapper(
            det,
            dict(
                optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                constructor='MixMAELayerDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay_rate=0.9)))
    g = {x['param_name']: x for x in wrapper.optimizer.param_groups}
    assert g['backbone.patch_embed.proj.weight']['lr'] == pytest.approx(
        1e-4 * 0.9**6)  # sum(depths) + 1 = 6
    assert g['neck.lateral_convs.0.conv.weight']['lr'] == pytest.approx(
        1e-4 * 0.9)
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg = SEG.build(
            dict(
                type='EncoderDecoder',
                backbone=_tiny_backbone(),
                decode_head=dict(
                    type='FCNHead', in_channels=256, in_index=3, channels=16,
                    num_convs=1, num_classes=4)))
        wrapper = build_optim_wrapper(
            seg,
            dict(
                optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                constructor='MixMAELayerDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay_rate=0.9)))
    g = {x['param_name']: x for x in wrapper.optimizer.param_groups}
    assert g['backbone.layers.1.blocks.0.attn.qkv.weight']['lr'] == \
        pytest.approx(1e-4 * 0.9**4)  # id 2


def test_refuses_models_without_layer_depth():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type='AdamW', lr=1e-4),
                constructor='MixMAELayerDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay_rate=0.9)))
