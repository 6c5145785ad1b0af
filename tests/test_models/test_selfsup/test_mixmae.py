import copy
import re

import pytest
import torch
from mmpretrain.registry import MODELS

from mixmae_mm.models.layers.mixing import (mix_images, sample_mix_mask,
                                            upsample_mask)
from mixmae_mm.models.layers.pos_embed import sincos_pos_embed_2d
from mixmae_mm.models.utils.ckpt_convert import convert_mmpretrain_mixmim


def _batch(b=4, size=64):
    return dict(
        inputs=torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8),
        data_samples=None)


def test_loss_backward_reaches_every_part(tiny_mixmae_cfg):
    model = MODELS.build(tiny_mixmae_cfg)
    model.init_weights()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss'} and torch.isfinite(losses['loss'])
    losses['loss'].backward()
    table = 'backbone.layers.3.blocks.0.attn.relative_position_bias_table'
    for name in ('backbone.patch_embed.proj.weight', table,
                 'neck.mask_token', 'neck.decoder_pred.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_masks_made_elsewhere_must_have_the_preprocessors_count(
        tiny_mixmae_cfg, attention_path):
    """loss() hands the encoder the preprocessor's partner count: a mask
    with another count is refused with the count in the message; with a
    per-batch ratio (no fixed count) any count is taken."""
    imgs = torch.randn(4, 3, 64, 64)
    mask = sample_mix_mask(4, (2, 2), 0.75)  # 3 squares, the model says 2
    inputs = [imgs, mix_images(imgs, mask), mask]
    model = MODELS.build(tiny_mixmae_cfg)
    with pytest.raises(RuntimeError, match='num_partner=2 squares'):
        model.loss(inputs, None)
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['data_preprocessor']['range_mask_ratio'] = 0.3
    assert torch.isfinite(MODELS.build(cfg).loss(inputs, None)['loss'])


def test_extract_feat_is_unmasked(tiny_mixmae_cfg):
    model = MODELS.build(tiny_mixmae_cfg).eval()
    data = model.data_preprocessor(_batch(), True)
    feats = model(**data, mode='tensor')
    imgs = data['inputs'][0]
    assert feats[0].shape == (4, 256, 2, 2)
    torch.testing.assert_close(feats[0], model.backbone(imgs)[0])


def test_derived_values_are_filled_in(tiny_mixmae_cfg):
    """Neck and head take width, patch size and reconstruction mode from
    the part that decides them; the caller's dicts stay unchanged."""
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['backbone']['arch']['embed_dims'] = 16  # widths 16 ... 128
    cfg['neck']['dual_reconstruction'] = False
    given = copy.deepcopy(cfg)
    model = MODELS.build(cfg)
    assert cfg == given
    assert model.neck.in_channels == 128 == model.backbone.num_features[-1]
    assert model.neck.decoder_embed.in_features == 128
    stride = model.backbone.out_strides[-1]
    assert model.neck.patch_size == model.head.patch_size == stride == 32
    assert model.neck.decoder_pred.out_features == 32 * 32 * 3
    assert model.head.dual_reconstruction is False
    data = model.data_preprocessor(_batch(b=2), True)
    assert torch.isfinite(model(**data, mode='loss')['loss'])


@pytest.mark.parametrize('part,key,value,derived', [
    ('neck', 'in_channels', 128, 'backbone.num_features[-1]=256'),
    ('neck', 'patch_size', 16, 'backbone.out_strides[-1]=32'),
    ('head', 'patch_size', 16, 'backbone.out_strides[-1]=32'),
    ('head', 'dual_reconstruction', False, 'neck.dual_reconstruction=True'),
])
def test_conflicting_explicit_value_is_refused(tiny_mixmae_cfg, part, key,
                                               value, derived):
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg[part][key] = value
    # the message names both values and where the derived one comes from
    with pytest.raises(
            ValueError,
            match=re.escape(f'{part}.{key}={value!r} conflicts with '
                            f'{derived}')):
        MODELS.build(cfg)


def test_equal_explicit_values_are_accepted(tiny_mixmae_cfg):
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['neck'].update(in_channels=256, patch_size=32)
    cfg['head'].update(patch_size=32, dual_reconstruction=True)
    model = MODELS.build(cfg)
    assert model.neck.in_channels == 256 and model.head.patch_size == 32


def test_built_parts_are_checked(tiny_mixmae_cfg):
    """Built modules cannot be filled in, only checked."""
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['neck'] = MODELS.build(dict(cfg['neck'], in_channels=256))
    cfg['head'] = MODELS.build(cfg['head'])
    model = MODELS.build(cfg)
    assert model.neck is cfg['neck'] and model.head is cfg['head']
    cfg['neck'] = MODELS.build(dict(tiny_mixmae_cfg['neck']))  # 1024 wide
    with pytest.raises(
            ValueError,
            match=r'neck.in_channels=1024 conflicts with '
            r'backbone.num_features\[-1\]=256$'):
        MODELS.build(cfg)


def test_out_indices_must_be_the_last_stage(tiny_mixmae_cfg):
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['backbone']['out_indices'] = (2, 3)
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(cfg)


def test_ablation_switches(tiny_mixmae_cfg):
    """Masked attention off, single reconstruction, stride-4 mask: each
    trains, and each changes what the model computes."""
    data = _batch()
    base = MODELS.build(tiny_mixmae_cfg)
    base.init_weights()
    torch.manual_seed(1)
    ref = base(**base.data_preprocessor(data, True), mode='loss')['loss']

    calls = []
    for name, change in [
        ('no_masked_attn', dict(masked_attention=False)),
        ('single', dict(neck=dict(dual_reconstruction=False))),
        ('stride4', dict(data_preprocessor=dict(mix_stride=4))),
    ]:
        cfg = copy.deepcopy(tiny_mixmae_cfg)
        for key, value in change.items():
            if isinstance(value, dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        model = MODELS.build(cfg)
        model.load_state_dict(base.state_dict())
        model.backbone.register_forward_pre_hook(
            lambda mod, args, name=name: calls.append((name, len(args))))
        seen = {}
        model.neck.register_forward_pre_hook(
            lambda mod, args: seen.update(mask=args[1]))  # returns None
        torch.manual_seed(1)
        inputs = model.data_preprocessor(data, True)['inputs']
        loss = model(inputs, None, mode='loss')['loss']
        loss.backward()
        assert torch.isfinite(loss) and abs(loss.item() - ref.item()) > 1e-6
        if name == 'stride4':
            assert inputs[2].shape == (1, 16, 16)
            # the decoder gets the stride-32 grid: top-left patch decides
            assert torch.equal(seen['mask'], inputs[2][:, ::8, ::8])
        else:
            assert torch.equal(seen['mask'], inputs[2])
    # without masked attention the encoder gets no mask at all; with it,
    # the mask and the preprocessor's partner count
    assert calls == [('no_masked_attn', 1), ('single', 3), ('stride4', 3)]


def test_mix_stride_must_be_a_stage_stride(tiny_mixmae_cfg):
    cfg = copy.deepcopy(tiny_mixmae_cfg)
    cfg['data_preprocessor']['mix_stride'] = 12
    with pytest.raises(ValueError, match='mix_stride'):
        MODELS.build(cfg)


def _mmpretrain_pair(img_size=128, windows=(8, 4, 4, 2)):
    arch = dict(embed_dims=32, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
    theirs = MODELS.build(
        dict(
            type='MixMIM',
            backbone=dict(
                type='MixMIMPretrainTransformer',
                arch=arch,
                img_size=img_size,
                window_size=list(windows),
                mask_ratio=0.5),
            neck=dict(
                type='MixMIMPretrainDecoder',
                num_patches=(img_size // 32)**2,
                encoder_stride=32,
                embed_dim=256,
                decoder_embed_dim=64,
                decoder_depth=2,
                decoder_num_heads=4),
            head=dict(
                type='MixMIMPretrainHead',
                norm_pix=True,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    theirs.init_weights()
    ours = MODELS.build(
        dict(
            type='MixMAE',
            backbone=dict(type='MixMAESwin', arch=arch, window_size=windows),
            # mmpretrain's decoder uses LayerNorm eps 1e-6 (official 1e-5)
            neck=dict(
                type='MixMAEPretrainDecoder',
                in_channels=256,
                embed_dims=64,
                depth=2,
                num_heads=4,
                norm_eps=1e-6),
            head=dict(type='MixMAEPretrainHead', norm_pix=True)))
    # random (not init) values everywhere, so nothing matches by accident
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    sd, report = convert_mmpretrain_mixmim(theirs.state_dict())
    ours.load_state_dict(sd, strict=True)
    # our fixed sin-cos tables are derived: give mmpretrain the same ones
    grid = img_size // 4
    with torch.no_grad():
        theirs.backbone.absolute_pos_embed.copy_(
            sincos_pos_embed_2d(32, (grid, grid)))
        theirs.neck.decoder_pos_embed.copy_(
            sincos_pos_embed_2d(64, (grid // 8, grid // 8)))
    return theirs.eval(), ours.eval(), report


def test_equivalence_with_mmpretrain_mixmim(attention_path):
    theirs, ours, report = _mmpretrain_pair()
    assert any('downsample' in k for k in report['converted'])
    imgs = torch.randn(4, 3, 128, 128)
    mask = sample_mix_mask(4, (4, 4), 0.5)  # (1, 4, 4)
    masks = [
        upsample_mask(mask, s).float().reshape(1, -1, 1)
        for s in (8, 4, 2, 1)
    ]
    theirs.backbone.random_masking = lambda x, ratio: masks
    with torch.no_grad():
        latent_t, mask_t = theirs.backbone(imgs)
        loss_t = theirs.head.loss(theirs.neck(latent_t, mask_t), imgs, mask_t)
        latent_o = ours.backbone(mix_images(imgs, mask), mask)[-1]
        loss_o = ours.loss([imgs, mix_images(imgs, mask), mask], None)
    latent_o = latent_o.flatten(2).transpose(1, 2)  # (B, L, C)
    torch.testing.assert_close(latent_o, latent_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss_o['loss'], loss_t, rtol=1e-5, atol=0)
    # unmasked: mmpretrain's classification path pools the final norm
    with torch.no_grad():
        pooled_t = theirs.backbone(imgs, mask=None)[0]  # (B, C)
        pooled_o = ours.extract_feat(imgs)[-1].mean((2, 3))
    torch.testing.assert_close(pooled_o, pooled_t, rtol=1e-5, atol=1e-5)
