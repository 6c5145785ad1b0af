import pytest
import torch
from mmpretrain.registry import MODELS

from mixmae_mm.models.backbones import MixMAESwin
from mixmae_mm.models.layers.mixing import (mix_images, sample_mix_mask,
                                            upsample_mask)
from reference.padded_window import mix_tokens


def _build(cfg, **kwargs):
    cfg = dict(cfg, **kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def test_arch_errors():
    with pytest.raises(ValueError, match='unknown arch'):
        MixMAESwin(arch='tiny')
    with pytest.raises(ValueError, match='must be a dict with keys'):
        MixMAESwin(arch=dict(embed_dims=32, depths=[1, 1, 1, 1]))
    with pytest.raises(ValueError, match='differ in length'):
        MixMAESwin(arch=dict(embed_dims=32, depths=[1, 1], num_heads=[1]))
    with pytest.raises(ValueError, match='one entry per stage'):
        MixMAESwin(window_size=(14, 14, 7))


@pytest.mark.parametrize('arch,dims', [('b', 128), ('large', 192),
                                       ('huge', 352)])
def test_arch_zoo(arch, dims):
    m = MixMAESwin(arch=arch)
    assert m.embed_dims == dims and m.depths == [2, 2, 18, 2]
    assert m.num_features == [dims, 2 * dims, 4 * dims, 8 * dims]
    assert all(
        blk.attn.qkv.in_features // blk.attn.num_heads == 32
        for layer in m.layers for blk in layer.blocks)


def test_base_params_match_mmpretrain():
    """Same learnable parameters as mmpretrain's MixMIM-B (88M incl. the
    1000-class head); our sin-cos table is a derived, not a stored, tensor."""
    from mmpretrain.models import MixMIMTransformer
    ours = sum(p.numel() for p in MixMAESwin('base').parameters())
    theirs = sum(p.numel() for p in MixMIMTransformer('base').parameters()
                 if p.requires_grad)
    assert ours == theirs
    assert abs(ours + 1024 * 1000 + 1000 - 88.0e6) < 0.5e6


@pytest.mark.parametrize('size', [(64, 64), (50, 70), (96, 33)])
def test_dense_shapes(tiny_backbone_cfg, size, attention_path):
    model = _build(tiny_backbone_cfg, out_indices=(0, 1, 2, 3))
    outs = model(torch.randn(2, 3, *size))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        s = 4 * 2**i
        assert out.shape == (2, 32 * 2**i, -(-size[0] // s),
                             -(-size[1] // s))


def test_pixel_mixing_equals_token_mixing(tiny_backbone_cfg):
    model = _build(tiny_backbone_cfg)
    x = torch.randn(4, 3, 64, 96)
    mask = sample_mix_mask(4, (2, 3), 0.5)
    pixel = model.patch_embed(mix_images(x, mask))
    token = mix_tokens(model.patch_embed(x), mask)
    assert torch.equal(pixel, token)


def _leak_check(model, mask, b=4, size=(64, 64), num_partner=None):
    """Perturb the partner pixels of sample 0's mixed image; return the max
    change of sample 0's own and partner tokens at every stage."""
    x = torch.randn(b, 3, *size)
    mixed = mix_images(x, mask)
    other = mixed.clone()
    m = upsample_mask(mask[:1], 32)[0]  # (H, W) True = partner pixel
    other[0][:, m] = torch.randn_like(other[0][:, m]) * 3
    with torch.no_grad():
        args = (mask, num_partner) if model.masked else ()
        a = model(mixed, *args)
        c = model(other, *args)
    own, partner = [], []
    for i, (fa, fc) in enumerate(zip(a, c)):
        grid = upsample_mask(mask[:1], 8 >> i)[0]  # (H_i, W_i)
        diff = (fa[0] - fc[0]).abs()  # (C, H_i, W_i)
        own.append(diff[:, ~grid].max().item())
        partner.append(diff[:, grid].max().item())
    return own, partner


@pytest.mark.parametrize('counted', [False, True])
def test_no_leakage_between_mixed_images(tiny_backbone_cfg, attention_path,
                                         counted):
    """Also with the partner count, by which the static path splits the
    global stages 3-4 into the two images' cells."""
    model = _build(tiny_backbone_cfg, out_indices=(0, 1, 2, 3))
    mask = sample_mix_mask(4, (2, 2), 0.5)
    model.masked = True
    own, partner = _leak_check(model, mask, num_partner=2 if counted else None)
    assert max(own) < 1e-5, own  # own tokens unchanged at every stage
    assert min(partner) > 1e-3, partner  # the perturbation is real
    # control: plain attention (no mask) leaks, so the check can fail
    model.masked = False
    own, _ = _leak_check(model, mask)
    assert own[-1] > 1e-3


def test_no_leakage_with_padding_and_per_pair_masks(tiny_backbone_cfg, attention_path):
    # 96 px: stage-1 grid 24 is not a multiple of the window 16 -> padding
    model = _build(
        tiny_backbone_cfg, out_indices=(0, 1, 2, 3),
        window_size=(16, 8, 4, 2))
    model.masked = True
    mask = sample_mix_mask(4, (3, 3), 0.5, per_pair=True)
    own, partner = _leak_check(model, mask, size=(96, 96))
    assert max(own) < 1e-5 and min(partner) > 1e-3


def test_shared_mask_equals_repeated_per_sample_mask(tiny_backbone_cfg, attention_path):
    model = _build(tiny_backbone_cfg)
    x = torch.randn(4, 3, 64, 64)
    mask = sample_mix_mask(4, (2, 2), 0.5)
    mixed = mix_images(x, mask)
    with torch.no_grad():
        a = model(mixed, mask)[0]
        b = model(mixed, mask.expand(4, -1, -1))[0]
    torch.testing.assert_close(a, b)


def _check_partner_counts(fn):
    mask = sample_mix_mask(4, (2, 2), 0.5)  # 2 partner squares
    x = mix_images(torch.randn(4, 3, 64, 64), mask)
    with torch.no_grad():
        fn(x, mask, 2)  # the right count passes
        with pytest.raises(RuntimeError, match='num_partner=1 squares'):
            fn(x, mask, 1)
        bad = mask.repeat(4, 1, 1)
        bad[3] = True  # one sample's mask gives all 4 squares
        with pytest.raises(RuntimeError, match='num_partner=2 squares'):
            fn(x, bad, 2)


def test_wrong_partner_count_is_an_error(tiny_backbone_cfg, attention_path):
    """A count the mask does not have would put both images in one static
    cell: refused on both paths."""
    _check_partner_counts(_build(tiny_backbone_cfg))


def test_wrong_partner_count_is_an_error_in_a_compiled_graph(
        tiny_backbone_cfg):
    """The check is traced (no graph break) and still raises."""
    model = _build(tiny_backbone_cfg)
    _check_partner_counts(
        torch.compile(model, backend='eager', fullgraph=True))


def test_mask_input_errors(tiny_backbone_cfg):
    model = _build(tiny_backbone_cfg)
    with pytest.raises(ValueError, match=r'divisible by 32.*\(64, 80\)|'
                       r'\(64, 80\).*divisible by 32'):
        model(torch.randn(2, 3, 64, 80), torch.zeros(1, 2, 2, dtype=bool))
    with pytest.raises(ValueError, match='mix_mask must have shape'):
        model(torch.randn(2, 3, 64, 64), torch.zeros(1, 3, 2, dtype=bool))
    with pytest.raises(ValueError, match='mix_mask must have shape'):
        model(torch.randn(4, 3, 64, 64), torch.zeros(3, 2, 2, dtype=bool))


def test_window_is_clamped_to_small_maps(tiny_backbone_cfg, attention_path):
    """Windows larger than the map attend globally: same output as a model
    whose windows equal the map (the table's central part is used)."""
    big = _build(tiny_backbone_cfg, window_size=(16, 8, 8, 8))
    exact = _build(tiny_backbone_cfg, window_size=(16, 8, 4, 2))
    sd = big.state_dict()
    for name, p in exact.state_dict().items():
        if name.endswith('relative_position_bias_table'):
            src = sd[name]
            w_big = int((src.shape[0]**.5 + 1) // 2)
            w = int((p.shape[0]**.5 + 1) // 2)
            off = w_big - w
            grid = src.view(2 * w_big - 1, 2 * w_big - 1, -1)
            sd[name] = grid[off:off + 2 * w - 1,
                            off:off + 2 * w - 1].reshape(-1, p.shape[1])
    exact.load_state_dict(sd)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(big(x)[0], exact(x)[0])


def test_fine_mask_ablation_leaks_through_patch_merging(tiny_backbone_cfg, attention_path):
    """A mask on the stride-4 patch grid (the ablation): stage 1 still keeps
    the two images apart, but patch merging blends them, so later stages
    see the partner; the stride-32 mask of the method never leaks."""
    model = _build(tiny_backbone_cfg, out_indices=(0, 1, 2, 3))
    x = torch.randn(4, 3, 64, 64)
    # stride 4, a checkerboard: half of the patches from the partner
    rows, cols = torch.meshgrid(
        torch.arange(16), torch.arange(16), indexing='ij')
    mask = ((rows + cols) % 2 == 1)[None]  # (1, 16, 16)
    mixed = mix_images(x, mask)
    other = mixed.clone()
    m = upsample_mask(mask[:1], 4)[0]  # (H, W) True = partner pixel
    other[0][:, m] = torch.randn_like(other[0][:, m]) * 3
    with torch.no_grad():
        a = model(mixed, mask)
        c = model(other, mask)
    own0 = (a[0][0] - c[0][0]).abs()[:, ~mask[0]]  # stage 1, own tokens
    assert own0.max() < 1e-5
    assert (a[0][0] - c[0][0]).abs()[:, mask[0]].max() > 1e-3
    # every stride-32 token counts as own (top-left patch) yet holds
    # partner pixels: the leak the stride-32 grid avoids
    assert not mask[0, ::8, ::8].any()
    assert (a[3][0] - c[3][0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r'\(16, 16\) \(stride 4\)'):
        model(mixed, torch.zeros(1, 5, 5, dtype=torch.bool))
