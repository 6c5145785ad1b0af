"""MixMAEPVTv2: mmdet's PVTv2 without a mix mask, no information across
the two mixed images with one."""
import math
import os

import mmdet
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.backbones.pvt import PyramidVisionTransformerV2
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mixmae_mm.models.backbones import MixMAEPVTv2
from mixmae_mm.models.backbones.mixmae_pvtv2 import group_conv
from mixmae_mm.models.layers.mixing import (resample_mask, sample_mix_mask,
                                            upsample_mask)

#: A tiny custom arch (stage widths 8/16/24/32, two blocks in stage 2).
TINY = dict(embed_dims=8, num_layers=[1, 2, 1, 1], num_heads=[1, 2, 3, 4],
            mlp_ratios=[2, 4, 2, 3])
#: Finer reduction (key grid of stride 16 in stages 1-3).
TINY_SR = dict(TINY, sr_ratios=[4, 2, 1, 1])
ALL = (0, 1, 2, 3)


def _build(arch, **kwargs):
    """An encoder with random weights, LayerNorms and biases included (so
    that none is at its trivial init), in eval mode."""
    model = MixMAEPVTv2(arch, out_indices=ALL, **kwargs)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return model.eval()


def _mmdet_twin(model):
    """mmdet's PVTv2 with ``model``'s arch and weights (strict load)."""
    twin = PyramidVisionTransformerV2(
        embed_dims=model.embed_dims, num_layers=model.depths,
        num_heads=model.num_heads, mlp_ratios=model.mlp_ratios,
        sr_ratios=model.sr_ratios, drop_path_rate=0., init_cfg=None)
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.eval()


@pytest.mark.parametrize('arch', ['b0', TINY, TINY_SR],
                         ids=['b0', 'tiny', 'tiny_sr'])
@pytest.mark.parametrize('size', [(64, 96), (70, 50)], ids=str)
def test_unmasked_forward_equals_mmdet(arch, size):
    """Same outputs as mmdet's class with the same weights, every stage;
    70 x 50 is no multiple of 32 (the convolutions floor as mmdet's).
    atol 1e-5: the outputs are LayerNorm-ed, many entries lie near 0,
    and SDPA sums in another order than mmdet's bmm-softmax-bmm (about
    4e-6 apart on entries of size 4)."""
    model = _build(arch)
    twin = _mmdet_twin(model)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours, theirs = model(x), twin(x)
    assert len(ours) == len(theirs) == 4
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape
        diff = (a - b).abs()
        print(f'{size} stage {i}: max abs {diff.max():.2e}, '
              f'max |out| {b.abs().max():.2f}')
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_state_dict_loads_strictly_both_ways_and_same_seed_init():
    """mmdet's weights load strictly into ours; with one seed both
    constructors and init_weights give the same tensors."""
    torch.manual_seed(3)
    ours = MixMAEPVTv2('b0')
    ours.init_weights()
    torch.manual_seed(3)
    theirs = PyramidVisionTransformerV2(embed_dims=32, init_cfg=None,
                                        num_layers=[2, 2, 2, 2])
    theirs.init_weights()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in b:
        assert torch.equal(a[key], b[key]), key
    assert all(m.eps == 1e-6 for m in ours.modules()
               if isinstance(m, torch.nn.LayerNorm))
    ours.load_state_dict(_build('b0').state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.parametrize('arch', ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'])
def test_arch_zoo_matches_mmdet_configs(arch):
    """Keys, shapes and parameter counts of mmdet's RetinaNet PVTv2
    backbones, read from mmdet's own configs."""
    root = os.path.join(os.path.dirname(mmdet.__file__), '.mim/configs/pvt')
    cfg = Config.fromfile(f'{root}/retinanet_pvtv2-{arch}_fpn_1x_coco.py')
    cfg = cfg.model.backbone.to_dict()
    cfg.pop('type')
    cfg['init_cfg'] = None
    theirs = PyramidVisionTransformerV2(**cfg)
    ours = MixMAEPVTv2(arch)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    # with the 1000-class head: the PVTv2 paper's 3.7/14.0/25.4/45.2/
    # 62.6/82.0 M
    paper = dict(b0=3.7, b1=14.0, b2=25.4, b3=45.2, b4=62.6, b5=82.0)
    head = ours.num_features[-1] * 1001
    assert round((count + head) / 1e6, 1) == paper[arch]
    assert ours.out_strides == [4, 8, 16, 32] and ours.mix_stride == 32


def test_refused_archs_and_inputs():
    for arch in ('b2_li', dict(TINY, linear=True)):
        with pytest.raises(ValueError, match='linear PVTv2 variant'):
            MixMAEPVTv2(arch)
    with pytest.raises(ValueError, match='unknown arch'):
        MixMAEPVTv2('b9')
    with pytest.raises(ValueError, match='custom arch must be a dict'):
        MixMAEPVTv2(dict(embed_dims=8))
    with pytest.raises(ValueError, match='4 entries'):
        MixMAEPVTv2(dict(TINY, num_heads=[1, 2, 4]))
    model = _build(TINY)
    x = torch.randn(4, 3, 64, 96)
    with pytest.raises(ValueError, match='divisible by 32'):
        model(torch.randn(4, 3, 64, 80), torch.zeros(1, 2, 2, dtype=bool))
    for shape in [(1, 2, 2), (3, 2, 3), (1, 16, 24), (2, 3)]:
        with pytest.raises(ValueError, match=r'mix_mask must have shape '
                           r'\(1 or 4, 2, 3\)'):
            model(x, torch.zeros(shape, dtype=bool))
    # a reduction window wider than a square: fine plain, refused masked
    wide = _build(dict(TINY, sr_ratios=[16, 4, 2, 1]))
    wide(x)
    with pytest.raises(ValueError, match=r'windows of \[64, 32, 32, 32\]'):
        wide(x, torch.zeros(1, 2, 3, dtype=bool))


def _reference_group_conv(conv, x, in_groups, out_groups):
    """Each output position: ``conv`` on its window of the input with the
    pixels of the other image group (and the padding) zeroed."""
    (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
    xp = F.pad(x, [p] * 4)
    gp = F.pad(in_groups.long(), [p] * 4, value=-1)  # padding: no group
    b, _, h, w = group_conv(conv, x, None, None).shape
    out = torch.empty(b, conv.out_channels, h, w)
    for n in range(b):
        m = n if in_groups.shape[0] > 1 else 0
        for i in range(h):
            for j in range(w):
                keep = gp[m, i * s:i * s + k, j * s:j * s + k] == \
                    out_groups[m, i, j].long()
                win = xp[n, :, i * s:i * s + k, j * s:j * s + k] * keep
                out[n, :, i, j] = F.conv2d(win[None], conv.weight, conv.bias,
                                           groups=conv.groups)[0, :, 0, 0]
    return out


@pytest.mark.parametrize('conv,out_scale', [
    (torch.nn.Conv2d(3, 5, 7, 4, 3), 4),  # stage-1 patch embedding
    (torch.nn.Conv2d(4, 6, 3, 2, 1), 2),  # later patch embeddings
    (torch.nn.Conv2d(6, 6, 3, 1, 1, groups=6), 1),  # FFN depth-wise 3x3
])
@pytest.mark.parametrize('per_pair', [False, True])
def test_group_conv_equals_direct_reference(conv, out_scale, per_pair):
    # 8-px squares on a 16 x 24 input
    mask = sample_mix_mask(2, (2, 3), 0.5, per_pair=per_pair)
    x = torch.randn(2, conv.in_channels, 16, 24)
    in_groups = upsample_mask(mask, 8)
    out_groups = resample_mask(mask, 8, out_scale)
    with torch.no_grad():
        out = group_conv(conv, x, in_groups, out_groups)
        ref = _reference_group_conv(conv, x, in_groups, out_groups)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def _reference_attention(attn, x, hw, mask, stride):
    """Masked softmax attention written out: per sample, image group and
    head, the group's queries attend to the group's reduced keys."""
    b, _, c = x.shape
    dh = c // attn.num_heads
    w, bias = attn.attn.in_proj_weight, attn.attn.in_proj_bias
    q = x @ w[:c].T + bias[:c]
    kv = x
    if attn.sr_ratio > 1:
        kv = attn.sr(x.transpose(1, 2).reshape(b, c, *hw))
        kv = attn.norm(kv.flatten(2).transpose(1, 2))
    k = kv @ w[c:2 * c].T + bias[c:2 * c]
    v = kv @ w[2 * c:].T + bias[2 * c:]
    token_groups = upsample_mask(mask, 32 // stride)  # (M, H, W)
    # a reduced key is one sr x sr window: its top-left token's group
    key_groups = token_groups[:, ::attn.sr_ratio, ::attn.sr_ratio]
    out = torch.zeros_like(q)
    for n in range(b):
        m = n if mask.shape[0] > 1 else 0
        gq, gk = token_groups[m].flatten(), key_groups[m].flatten()
        for g in (False, True):
            qi, ki = gq == g, gk == g
            for h in range(attn.num_heads):
                hs = slice(h * dh, (h + 1) * dh)
                scores = q[n, qi, hs] @ k[n, ki, hs].T / math.sqrt(dh)
                out[n, qi, hs] = scores.softmax(-1) @ v[n, ki, hs]
    return attn.attn.out_proj(out)


@pytest.mark.parametrize('arch', [TINY, TINY_SR], ids=['tiny', 'tiny_sr'])
@pytest.mark.parametrize('per_pair', [False, True])
def test_masked_attention_equals_reference(arch, per_pair):
    model = _build(arch)
    x = torch.randn(2, 3, 64, 96)
    mask = sample_mix_mask(2, (2, 3), 0.5, per_pair=per_pair)
    groups = model.image_groups(mask, x)
    for i, (_, blocks, _) in enumerate(model.layers):
        stride = model.out_strides[i]
        hw = (64 // stride, 96 // stride)
        tokens = torch.randn(2, hw[0] * hw[1], model.num_features[i])
        attn = blocks[0].attn
        with torch.no_grad():
            out = attn(tokens, hw, groups[i].attn_mask)
            ref = _reference_attention(attn, tokens, hw, mask, stride)
            plain = attn(tokens, hw)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out, plain, atol=1e-3)  # the mask acts


def _changes(model, x, mask):
    """Per stage: max change of sample 0's own tokens and min change of
    its partner tokens when only its partner pixels change."""
    x2 = x.clone()
    partner_px = upsample_mask(mask, 32)[0]  # (H, W), sample 0's partner
    x2[0, :, partner_px] += torch.randn_like(x2[0, :, partner_px])
    with torch.no_grad():
        outs, outs2 = model(x, mask), model(x2, mask)
    own, partner = [], []
    for out, out2, stride in zip(outs, outs2, model.out_strides):
        groups = resample_mask(mask, 32, stride)[0]  # (H_s, W_s)
        diff = (out[0] - out2[0]).abs().amax(0)  # (H_s, W_s)
        own.append(diff[~groups].max().item())
        partner.append(diff[groups].min().item())
    return own, partner


@pytest.mark.parametrize('arch', [TINY, TINY_SR], ids=['tiny', 'tiny_sr'])
@pytest.mark.parametrize('per_pair', [False, True])
def test_no_leakage_between_mixed_images(arch, per_pair):
    model = _build(arch)
    x = torch.randn(4, 3, 64, 96)
    mask = sample_mix_mask(4, (2, 3), 0.5, per_pair=per_pair)
    own, partner = _changes(model, x, mask)
    print(f'per_pair={per_pair}: own max {max(own):.1e}, '
          f'partner min {min(partner):.1e}')
    assert max(own) < 1e-5 and min(partner) > 1e-3
    # controls: each leak is real (stage 1 already). The encoder has no
    # switch for them: the test drops one part of every stage's groups.
    image_groups = model.image_groups
    model.image_groups = lambda *a: [
        g._replace(embed_in=None, tokens=None) for g in image_groups(*a)]
    own_conv, _ = _changes(model, x, mask)
    model.image_groups = lambda *a: [
        g._replace(attn_mask=None) for g in image_groups(*a)]
    own_attn, _ = _changes(model, x, mask)
    print(f'  control own max: conv off {own_conv}, attention off '
          f'{own_attn}')
    assert own_conv[0] > 1e-3 and own_attn[0] > 1e-3


def test_all_own_mask_is_the_plain_forward():
    """A mask with no partner square changes nothing (the per-group
    convolutions count the bias once; every key is allowed). atol 1e-5:
    SDPA with a mask may take another kernel (1.3e-6 apart, torch 2.1)."""
    model = _build(TINY)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        masked = model(x, torch.zeros(2, 2, 3, dtype=bool))
        plain = model(x)
    for a, b in zip(masked, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_mixmae_loss_and_backward():
    model = MODELS.build(
        dict(
            type='MixMAE',
            backbone=dict(
                type='MixMAEPVTv2',
                arch=dict(embed_dims=8, num_layers=[1, 1, 1, 1],
                          num_heads=[1, 2, 4, 8]),
                out_indices=(3, )),
            neck=dict(
                type='MixMAEPretrainDecoder', embed_dims=64, depth=1,
                num_heads=4),
            head=dict(type='MixMAEPretrainHead')))
    model.init_weights()
    assert model.neck.in_channels == 64 and model.head.patch_size == 32
    batch = dict(
        inputs=torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8),
        data_samples=None)
    data = model.data_preprocessor(batch, True)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    params = dict(model.named_parameters())
    for name in ('backbone.layers.0.0.projection.weight',
                 'backbone.layers.3.1.0.attn.attn.in_proj_weight',
                 'backbone.layers.0.1.0.ffn.layers.1.weight'):
        assert params[name].grad.abs().sum() > 0, name


def test_get_layer_depth():
    model = MixMAEPVTv2('b0')  # depths 2, 2, 2, 2: num_layers 10
    expected = {
        'backbone.layers.0.0.projection.weight': 0,
        'backbone.layers.0.1.0.norm1.weight': 1,
        'backbone.layers.0.1.1.attn.sr.weight': 2,
        'backbone.layers.0.2.weight': 2,  # stage norm: its last block
        'backbone.layers.1.0.norm.bias': 3,  # with the first block of 1
        'backbone.layers.1.1.0.ffn.layers.4.weight': 3,
        'backbone.layers.3.1.1.attn.attn.out_proj.weight': 8,
        'backbone.layers.3.2.bias': 8,
        'neck.decoder_pred.weight': 8,
    }
    for name, layer_id in expected.items():
        assert model.get_layer_depth(name, 'backbone.') == (layer_id, 10)


def test_pretrained_init_cfg_is_strict(tmp_path):
    source = _build(TINY)
    path = str(tmp_path / 'pretrain.pth')
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    torch.save(dict(state_dict=state), path)
    cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    model = MixMAEPVTv2(TINY, init_cfg=cfg)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    other = MixMAEPVTv2(dict(TINY, mlp_ratios=[4, 4, 4, 4]), init_cfg=cfg)
    with pytest.raises(ValueError, match='shape mismatch'):
        other.init_weights()
