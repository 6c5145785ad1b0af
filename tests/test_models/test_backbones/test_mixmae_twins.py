"""MixMAETwins: mmseg's PCPVT / SVT without a mix mask, no information
across the two mixed images with one."""
import math
import os

import mmseg
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmseg.models.backbones.twins import PCPVT, SVT

from mixmae_mm.models.backbones import MixMAETwins
from mixmae_mm.models.backbones import mixmae_twins
from mixmae_mm.models.layers.mixing import (resample_mask, sample_mix_mask,
                                            upsample_mask)

#: Tiny custom archs (stage widths 8/16/24/32; SVT: LSA in blocks 0, 2).
TINY_SVT = dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4],
                mlp_ratios=[2, 4, 2, 3], depths=[2, 3, 1, 2],
                window_sizes=[7, 7, 7, 7])
TINY_PCPVT = dict(TINY_SVT, window_sizes=None)
ARCHS = [TINY_SVT, TINY_PCPVT]
IDS = ['svt', 'pcpvt']
ALL = (0, 1, 2, 3)


def _build(arch, **kwargs):
    """An encoder with random weights, LayerNorms and biases included (so
    that none is at its trivial init), in eval mode."""
    model = MixMAETwins(arch, out_indices=ALL, **kwargs)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return model.eval()


def _mmseg_twin(model):
    """mmseg's class with ``model``'s arch and weights (strict load)."""
    kwargs = dict(embed_dims=model.num_features, num_heads=model.num_heads,
                  mlp_ratios=model.mlp_ratios, depths=model.depths,
                  sr_ratios=model.sr_ratios, qkv_bias=True,
                  drop_path_rate=0., norm_after_stage=model.norm_after_stage)
    if model.window_sizes is None:
        twin = PCPVT(**kwargs)
    else:
        twin = SVT(windiow_sizes=model.window_sizes, **kwargs)
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.eval()


@pytest.mark.parametrize('arch', ARCHS, ids=IDS)
@pytest.mark.parametrize('size', [(64, 96), (70, 50), (56, 60), (60, 56)],
                         ids=str)
def test_unmasked_forward_equals_mmseg(arch, size):
    """Same outputs as mmseg's class with the same weights, every stage.
    70 x 50: sides no multiple of 4 (corner padding) and LSA windows padded
    at the bottom and the right; 56 x 60 / 60 x 56: padded on one side
    only, where mmseg's LSA mask allows the padding (see
    test_lsa_padding_quirk_is_mmseg_s). atol 1e-5: SDPA sums in another
    order than mmseg's matmul-softmax-matmul (about 2e-6 apart here)."""
    model = _build(arch)
    twin = _mmseg_twin(model)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours, theirs = model(x), twin(x)
    assert len(ours) == len(theirs) == 4
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape
        print(f'{size} stage {i}: max abs {(a - b).abs().max():.2e}, '
              f'max |out| {b.abs().max():.2f}')
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', ARCHS, ids=IDS)
def test_state_dict_loads_strictly_both_ways_and_same_seed_init(arch):
    """Same keys in the same order; with one seed both constructors and
    init_weights give the same tensors; LayerNorm eps 1e-5 as mmseg's."""
    torch.manual_seed(3)
    ours = MixMAETwins(arch, out_indices=ALL)
    ours.init_weights()
    torch.manual_seed(3)
    ref = _build(arch)  # only for its arch fields
    kwargs = dict(embed_dims=ref.num_features, num_heads=ref.num_heads,
                  mlp_ratios=ref.mlp_ratios, depths=ref.depths,
                  qkv_bias=True, norm_after_stage=ref.norm_after_stage)
    torch.manual_seed(3)
    theirs = PCPVT(**kwargs) if arch['window_sizes'] is None else \
        SVT(windiow_sizes=arch['window_sizes'], sr_ratios=[8, 4, 2, 1],
            **kwargs)
    theirs.init_weights()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in b:
        assert torch.equal(a[key], b[key]), key
    assert all(m.eps == 1e-5 for m in ours.modules()
               if isinstance(m, torch.nn.LayerNorm))
    theirs.load_state_dict(ref.state_dict(), strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)


_CONFIGS = os.path.join(os.path.dirname(mmseg.__file__), '.mim/configs/twins')


@pytest.mark.parametrize('arch', sorted(MixMAETwins.arch_zoo))
def test_arch_zoo_matches_mmseg_configs(arch):
    """Keys, shapes and parameter counts of the backbones of mmseg's own
    UperNet configs; the SVT/PCPVT norm_after_stage default as theirs."""
    name = [f for f in os.listdir(_CONFIGS)
            if f.startswith(f'twins_{arch}_uperhead')]
    assert len(name) == 1, name
    cfg = Config.fromfile(os.path.join(_CONFIGS, name[0]))
    cfg = cfg.model.backbone.to_dict()
    cls = dict(PCPVT=PCPVT, SVT=SVT)[cfg.pop('type')]
    cfg['init_cfg'] = None
    theirs = cls(**cfg)
    ours = MixMAETwins(arch)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in theirs.parameters())
    assert ours.sr_ratios == cfg['sr_ratios']
    assert ours.norm_after_stage == cfg['norm_after_stage']
    assert ours.window_sizes == cfg.get('windiow_sizes')
    assert ours.out_strides == [4, 8, 16, 32] and ours.mix_grid == 32


def test_lsa_padding_quirk_is_mmseg_s():
    """mmseg's LSA mask allows the zero padding when only one side is
    padded (``mask[:, -0:]`` is the whole mask). It changes outputs, so the
    encoder keeps it (weights go to mmseg's class): at 56 x 60 px (stage-1
    grid 14 x 15, padded at the right only) ours equals mmseg's (above)
    and differs from a correctly masked window attention."""
    assert mixmae_twins.lsa_padding_mask((14, 15), 7) is None
    assert mixmae_twins.lsa_padding_mask((14, 14), 7) is None
    both = mixmae_twins.lsa_padding_mask((13, 15), 7)  # (1, 6, 1, 49, 49)
    assert both.shape == (1, 6, 1, 49, 49) and not both.all()
    model = _build(TINY_SVT)
    x = torch.randn(1, 3, 56, 60)
    with torch.no_grad():
        quirk = model(x)[0]
        real = mixmae_twins.lsa_padding_mask

        def correct(hw, ws, device=None):  # mmseg's intent
            h, w = hw
            pad = torch.zeros(1, h + (-h) % ws, w + (-w) % ws, dtype=bool)
            pad[:, h:, :] = True
            pad[:, :, w:] = True
            pad = mixmae_twins.to_windows(pad, ws)
            return (pad[..., :, None] == pad[..., None, :])[:, :, None]

        mixmae_twins.lsa_padding_mask = correct
        try:
            fixed = model(x)[0]
        finally:
            mixmae_twins.lsa_padding_mask = real
    diff = (quirk - fixed).abs().max().item()
    print(f'stage 1, 56x60 px: quirk vs correct mask max abs {diff:.3f}')
    assert diff > 1e-2


def test_refused_archs_and_inputs():
    with pytest.raises(ValueError, match='unknown arch'):
        MixMAETwins('svt-xl')
    with pytest.raises(ValueError, match='custom arch must be a dict'):
        MixMAETwins(dict(embed_dims=[8, 16, 24, 32]))
    with pytest.raises(ValueError, match='4 entries'):
        MixMAETwins(dict(TINY_SVT, num_heads=[1, 2, 4]))
    with pytest.raises(ValueError, match='sr_ratios needs 4'):
        MixMAETwins(TINY_SVT, sr_ratios=[8, 4, 2])
    model = _build(TINY_SVT)
    x = torch.randn(4, 3, 64, 96)
    with pytest.raises(ValueError, match='divisible by 32'):
        model(torch.randn(4, 3, 64, 80), torch.zeros(1, 2, 2, dtype=bool))
    for shape in [(1, 2, 2), (3, 2, 3), (1, 16, 24), (2, 3)]:
        with pytest.raises(ValueError, match=r'mix_mask must have shape '
                           r'\(1 or 4, 2, 3\)'):
            model(x, torch.zeros(shape, dtype=bool))
    # a reduction window wider than a square: fine plain, refused masked
    wide = _build(TINY_SVT, sr_ratios=[16, 4, 2, 1])
    wide(x)
    with pytest.raises(ValueError, match=r'windows of \[64, 32, 32, 32\]'):
        wide(x, torch.zeros(1, 2, 3, dtype=bool))


@pytest.mark.parametrize('arch', ARCHS, ids=IDS)
def test_patch_embeddings_never_cross_squares(arch):
    """Kernel = stride, no padding at multiples of 32, cumulative strides
    dividing 32: every patch lies in one square. Checked on the modules
    and on values: stage-1 embeddings of own squares do not move when the
    partner pixels change, with no other protection involved."""
    model = _build(arch)
    for embed, stride in zip(model.patch_embeds, model.out_strides):
        conv = embed.projection
        assert conv.kernel_size == conv.stride and conv.padding == (0, 0)
        assert 32 % stride == 0
    mask = sample_mix_mask(2, (2, 3), 0.5)
    x = torch.randn(2, 3, 64, 96)
    x2 = x.clone()
    partner_px = upsample_mask(mask, 32)[0]
    x2[0, :, partner_px] += 1
    with torch.no_grad():
        a, hw = model.patch_embeds[0](x)
        b, _ = model.patch_embeds[0](x2)
    own = ~resample_mask(mask, 32, 4)[0].flatten()  # (L,)
    assert hw == (16, 24)
    assert (a[0, own] - b[0, own]).abs().max() == 0
    assert (a[0, ~own] - b[0, ~own]).abs().min() > 0


def _reference_lsa(attn, x, hw, groups):
    """Masked window attention written out: per sample, window and head,
    a real token attends to the real tokens of its image in its window
    (and, where mmseg's mask allows it, to the window's zero padding)."""
    b, _, c = x.shape
    (h, w), ws, nh = hw, attn.window_size, attn.num_heads
    dh = c // nh
    hp, wp = h + (-h) % ws, w + (-w) % ws
    allow_pad = (hp == h) != (wp == w)  # one side padded: mmseg allows it
    xp = torch.zeros(b, hp, wp, c)
    xp[:, :h, :w] = x.view(b, h, w, c)
    q, k, v = attn.qkv(xp).split(c, -1)  # (B, Hp, Wp, C) each
    out = torch.zeros(b, h, w, c)
    for n in range(b):
        g = groups[n if groups.shape[0] > 1 else 0]  # (H, W)
        for i in range(h):
            for j in range(w):
                wi, wj = i // ws * ws, j // ws * ws
                keys = [(u, t) for u in range(wi, wi + ws)
                        for t in range(wj, wj + ws)
                        if (u < h and t < w and g[u, t] == g[i, j]) or
                        ((u >= h or t >= w) and allow_pad)]
                ku = torch.stack([k[n, u, t] for u, t in keys])
                vu = torch.stack([v[n, u, t] for u, t in keys])
                for hd in range(nh):
                    s = slice(hd * dh, (hd + 1) * dh)
                    score = ku[:, s] @ q[n, i, j, s] / math.sqrt(dh)
                    out[n, i, j, s] = score.softmax(0) @ vu[:, s]
    return attn.proj(out.view(b, h * w, c))


@pytest.mark.parametrize('size,per_pair', [((64, 96), False),
                                           ((64, 224), True)], ids=str)
def test_masked_lsa_equals_reference(size, per_pair):
    """Stage-1 LSA (windows 7, grid 16 x 24 padded at both sides; 16 x 56
    padded at the bottom only) against the loop reference."""
    model = _build(TINY_SVT)
    x = torch.randn(2, 3, *size)
    mask = sample_mix_mask(2, (size[0] // 32, size[1] // 32), 0.5,
                           per_pair=per_pair)
    groups = model.image_groups(mask, x)[0]
    hw = (size[0] // 4, size[1] // 4)
    tokens = torch.randn(2, hw[0] * hw[1], 8)
    attn = model.layers[0][0].attn
    with torch.no_grad():
        out = attn(tokens, hw, groups.lsa_mask)
        ref = _reference_lsa(attn, tokens, hw, groups.tokens)
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


@pytest.mark.parametrize('arch', ARCHS, ids=IDS)
@pytest.mark.parametrize('per_pair', [False, True])
def test_no_leakage_between_mixed_images(arch, per_pair):
    """Own tokens do not move (exactly 0.0) when only the partner image
    changes; controls: without each protection, stage 1 already leaks."""
    model = _build(arch)
    x = torch.randn(4, 3, 224, 224)  # LSA windows straddle the squares
    mask = sample_mix_mask(4, (7, 7), 0.5, per_pair=per_pair)
    own, partner = _changes(model, x, mask)
    print(f'per_pair={per_pair}: own max {max(own):.1e}, '
          f'partner min {min(partner):.1e}')
    assert max(own) == 0.0 and min(partner) > 1e-3
    image_groups = model.image_groups
    controls = dict(peg=dict(tokens=None), gsa=dict(gsa_mask=None))
    if arch['window_sizes'] is not None:
        controls['lsa'] = dict(lsa_mask=None)
    for name, off in controls.items():
        model.image_groups = lambda *a, off=off: [
            g._replace(**off) for g in image_groups(*a)]
        leak, _ = _changes(model, x, mask)
        print(f'  control {name} off: own max {leak}')
        assert leak[0] > 1e-3, name


@pytest.mark.parametrize('arch', ARCHS, ids=IDS)
@pytest.mark.parametrize('size', [(64, 96), (64, 224)], ids=str)
def test_all_own_mask_is_the_plain_forward(arch, size):
    """A mask with no partner square changes nothing, LSA padding
    included (64 x 224: stage-1 grid 16 x 56, padded at the bottom only,
    mmseg's mask allows the padding there)."""
    model = _build(arch)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        masked = model(x, torch.zeros(2, size[0] // 32, size[1] // 32,
                                      dtype=bool))
        plain = model(x)
    for a, b in zip(masked, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_group_shapes_do_not_depend_on_the_mask():
    """Static shapes: two different masks give groups of equal shapes
    (what torch.compile needs to reuse one graph)."""
    model = _build(TINY_SVT)
    x = torch.randn(2, 3, 64, 96)
    a = model.image_groups(torch.zeros(1, 2, 3, dtype=bool), x)
    b = model.image_groups(sample_mix_mask(2, (2, 3), 0.5), x)
    for ga, gb in zip(a, b):
        for ta, tb in zip(ga, gb):
            assert ta.shape == tb.shape and ta.dtype == tb.dtype


@pytest.mark.parametrize('arch', ARCHS, ids=IDS)
def test_mixmae_loss_and_backward(arch):
    model = MODELS.build(
        dict(
            type='MixMAE',
            backbone=dict(type='MixMAETwins', arch=arch, out_indices=(3, )),
            neck=dict(
                type='MixMAEPretrainDecoder', embed_dims=32, depth=1,
                num_heads=4),
            head=dict(type='MixMAEPretrainHead')))
    model.init_weights()
    assert model.neck.in_channels == 32 and model.head.patch_size == 32
    batch = dict(
        inputs=torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8),
        data_samples=None)
    data = model.data_preprocessor(batch, True)
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    params = dict(model.named_parameters())
    names = ['backbone.patch_embeds.0.projection.weight',
             'backbone.position_encodings.0.proj.weight',
             'backbone.layers.3.1.attn.attn.in_proj_weight',
             'backbone.layers.0.1.ffn.layers.1.weight']
    if arch['window_sizes'] is not None:
        names.append('backbone.layers.0.0.attn.qkv.weight')
    for name in names:
        assert params[name].grad.abs().sum() > 0, name


def test_get_layer_depth():
    model = MixMAETwins(TINY_SVT)  # depths 2, 3, 1, 2: num_layers 10
    expected = {
        'backbone.patch_embeds.0.projection.weight': 0,
        'backbone.layers.0.0.norm1.weight': 1,
        'backbone.position_encodings.0.proj.weight': 1,
        'backbone.layers.0.1.attn.sr.weight': 2,
        'backbone.norm_list.0.weight': 2,  # stage norm: its last block
        'backbone.patch_embeds.1.norm.bias': 3,  # with the first block
        'backbone.position_encodings.1.proj.bias': 3,
        'backbone.layers.1.2.ffn.layers.1.weight': 5,
        'backbone.layers.3.1.attn.attn.out_proj.weight': 8,
        'backbone.norm_list.3.bias': 8,
        'neck.decoder_pred.weight': 8,
    }
    for name, layer_id in expected.items():
        assert model.get_layer_depth(name, 'backbone.') == (layer_id, 10), \
            name


def test_pretrained_init_cfg_is_strict(tmp_path):
    source = _build(TINY_SVT)
    path = str(tmp_path / 'pretrain.pth')
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    torch.save(dict(state_dict=state), path)
    cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    model = MixMAETwins(TINY_SVT, init_cfg=cfg)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    other = MixMAETwins(TINY_PCPVT, init_cfg=cfg)  # GSA where SVT has LSA
    with pytest.raises(ValueError, match='does not match'):
        other.init_weights()
