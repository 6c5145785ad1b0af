"""PVTv2 export to the original release layout
(models/utils/pvt_convert.py): the inverse of mmdet's ``pvt_convert``."""
import pytest
import torch
from mmdet.models.backbones.pvt import PyramidVisionTransformerV2, pvt_convert

from mixmae_mm.models.utils.ckpt_convert import (ConversionError,
                                                 UnknownKeysError)
from mixmae_mm.models.utils.pvt_convert import pvtv2_to_release

HEADS, SR = (1, 2, 5, 8), (8, 4, 2, 1)
# mmdet archs: b0 as its config; b5's depths and mlp ratios, small widths
B0 = dict(embed_dims=32, num_layers=[2, 2, 2, 2], mlp_ratios=(8, 8, 4, 4))
B5 = dict(embed_dims=8, num_layers=[3, 6, 40, 3], mlp_ratios=(4, 4, 4, 4))


def mmdet_pvtv2(arch):
    """mmdet's PVTv2 with random values everywhere (LN weights too), so
    that a swapped or untouched tensor shows."""
    model = PyramidVisionTransformerV2(**arch)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def release_layout(arch):
    """Key -> shape of whai362/PVT ``pvt_v2.py``'s PyramidVisionTransformerV2
    without ``head``, written from its source (not from mmdet)."""
    keys, prev = {}, 3
    for i, (depth, heads, sr, ratio) in enumerate(
            zip(arch['num_layers'], HEADS, SR, arch['mlp_ratios']), 1):
        c, hid, k = arch['embed_dims'] * heads, arch['embed_dims'] * heads \
            * ratio, 7 if i == 1 else 3
        keys.update({
            f'patch_embed{i}.proj.weight': (c, prev, k, k),
            f'patch_embed{i}.proj.bias': (c, ),
            f'patch_embed{i}.norm.weight': (c, ),
            f'patch_embed{i}.norm.bias': (c, ),
            f'norm{i}.weight': (c, ),
            f'norm{i}.bias': (c, ),
        })
        for j in range(depth):
            block = {
                'norm1': (c, ), 'norm2': (c, ), 'attn.q': (c, c),
                'attn.kv': (2 * c, c), 'attn.proj': (c, c),
                'mlp.fc1': (hid, c), 'mlp.dwconv.dwconv': (hid, 1, 3, 3),
                'mlp.fc2': (c, hid)
            }
            if sr > 1:
                block.update({'attn.sr': (c, c, sr, sr), 'attn.norm': (c, )})
            for name, shape in block.items():
                keys[f'block{i}.{j}.{name}.weight'] = shape
                keys[f'block{i}.{j}.{name}.bias'] = shape[:1]
        prev = c
    return keys


def _source(arch):
    model = mmdet_pvtv2(arch)
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['neck.mask_token'] = torch.zeros(1, 1, 8)
    sd['head.fc.weight'] = torch.zeros(4, 8)
    return sd


@pytest.mark.parametrize('arch,n_keys', [(B0, 160), (B5, 948)],
                         ids=['b0', 'b5'])
def test_export_is_release_layout_and_inverse_of_mmdet(arch, n_keys):
    src = _source(arch)
    before = dict(src)
    out, report = pvtv2_to_release(src)

    # the release model's exact keys and shapes
    assert {k: tuple(v.shape) for k, v in out.items()} == \
        release_layout(arch)
    assert len(report['converted']) == n_keys
    assert report['dropped'] == ['neck.mask_token', 'head.fc.weight']
    assert report['unexpected'] == []
    in_proj = 'backbone.layers.0.1.0.attn.attn.in_proj_weight'
    assert report['renamed'][in_proj] == \
        'block1.0.attn.q.weight + block1.0.attn.kv.weight'
    # mmdet's own converter gives back every tensor, bit for bit
    back = pvt_convert(out)
    bb = {k[len('backbone.'):]: v for k, v in src.items()
          if k.startswith('backbone.')}
    assert set(back) == set(bb)
    for key, value in bb.items():
        assert back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key
    # pure: the input is untouched; the q/kv halves own their storage (a
    # saved slice would carry the whole 3C rows)
    assert src.keys() == before.keys() and all(
        src[k] is before[k] for k in src)
    q = out['block1.0.attn.q.weight']
    assert q.untyped_storage().nbytes() == q.numel() * q.element_size()


def test_bare_state_dict_with_empty_prefix():
    sd = mmdet_pvtv2(B0).state_dict()
    out, report = pvtv2_to_release(sd, prefix='')
    assert set(out) == set(release_layout(B0)) and report['dropped'] == []
    with pytest.raises(UnknownKeysError, match="prefix ''") as err:
        pvtv2_to_release(sd)  # no backbone. keys
    assert err.value.report['dropped'] == list(sd)


def test_unknown_keys_are_listed():
    src = _source(B0)
    src['backbone.mask_token'] = torch.zeros(1, 1, 32)
    src['backbone.layers.0.1.0.attn.qkv.weight'] = torch.zeros(96, 32)
    src['backbone.layers.0.1.0.ffn.layers.3.weight'] = torch.zeros(1)
    src['backbone.layers.0.0.norm.running_mean'] = 'not a tensor'
    with pytest.raises(UnknownKeysError) as err:
        pvtv2_to_release(src)
    assert err.value.keys == [
        'backbone.mask_token', 'backbone.layers.0.1.0.attn.qkv.weight',
        'backbone.layers.0.1.0.ffn.layers.3.weight',
        'backbone.layers.0.0.norm.running_mean'
    ]
    for key in err.value.keys:
        assert key in str(err.value)


def test_release_format_input_is_unknown():
    out, _ = pvtv2_to_release(_source(B0))
    with pytest.raises(UnknownKeysError, match='need no export') as err:
        pvtv2_to_release(out, prefix='')
    assert len(err.value.keys) == len(out)


def test_linear_variant_is_refused():
    """pvt_v2_b2_li in mmdet names (what mmdet's pvt_convert makes of it):
    1x1 ``attn.sr`` and ``attn.norm`` in every stage."""
    src = _source(B0)
    for i, heads in enumerate(HEADS):
        c = B0['embed_dims'] * heads
        for j in range(2):
            pre = f'backbone.layers.{i}.1.{j}.attn.'
            src[pre + 'sr.weight'] = torch.randn(c, c, 1, 1)
            src[pre + 'sr.bias'] = torch.randn(c)
            src[pre + 'norm.weight'] = torch.randn(c)
            src[pre + 'norm.bias'] = torch.randn(c)
    with pytest.raises(ConversionError, match='linear PVTv2 variant'):
        pvtv2_to_release(src)


def test_incomplete_or_misshaped_weights_are_refused():
    src = _source(B0)
    del src['backbone.layers.1.2.weight']
    del src['backbone.layers.2.1.1.attn.attn.out_proj.weight']
    del src['backbone.layers.0.1.1.attn.norm.bias']
    del src['backbone.layers.0.1.1.attn.norm.weight']
    with pytest.raises(ConversionError, match='incomplete') as err:
        pvtv2_to_release(src)
    assert {line.strip() for line in str(err.value).splitlines()[1:]} == {
        'norm2.weight', 'block3.1.attn.proj.weight',
        'block1.1.attn.sr/attn.norm (only one present)'
    }

    src = _source(B0)
    src['backbone.layers.3.1.1.'
        'attn.attn.in_proj_weight'] = torch.zeros(2 * 256, 256)
    with pytest.raises(ConversionError, match=r'\(3C, C\)'):
        pvtv2_to_release(src)
    src = _source(B0)
    src['backbone.layers.0.1.0.ffn.layers.0.weight'] = torch.zeros(256, 32)
    with pytest.raises(ConversionError, match='1x1 conv'):
        pvtv2_to_release(src)
