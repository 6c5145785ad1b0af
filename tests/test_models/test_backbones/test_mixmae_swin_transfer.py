"""Dense/transfer features of MixMAESwin: checkpoint loading with window
changes, strict pretrained init, frozen stages, checkpointing, layer ids."""
import pytest
import torch

from mixmae_mm.models.backbones import MixMAESwin
from mixmae_mm.models.layers.rel_pos import resize_rel_pos_table

ARCH = dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])


def _model(**kwargs):
    kwargs.setdefault('window_size', (4, 4, 4, 2))
    m = MixMAESwin(arch=dict(ARCH), **kwargs)
    m.init_weights()
    return m


def test_load_resizes_tables_and_drops_derived_keys():
    src = _model()
    sd = src.state_dict()
    # official/mmpretrain checkpoints carry derived tensors: must be ignored
    sd['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(
        16, 16, dtype=torch.long)
    sd['absolute_pos_embed'] = torch.zeros(1, 256, 32)
    dst = MixMAESwin(arch=dict(ARCH), window_size=(8, 6, 4, 2))
    dst.load_state_dict(sd, strict=True)
    for name in ('layers.0.blocks.0', 'layers.1.blocks.0'):
        table = dst.get_submodule(name).attn.relative_position_bias_table
        w = dst.get_submodule(name).attn.window_size
        assert table.shape == ((2 * w[0] - 1) * (2 * w[1] - 1), table.shape[1])
        ref = resize_rel_pos_table(
            src.get_submodule(name).attn.relative_position_bias_table,
            (4, 4), w)
        torch.testing.assert_close(table, ref)
    # unchanged windows load exactly
    torch.testing.assert_close(
        dst.layers[2].blocks[1].attn.relative_position_bias_table,
        src.layers[2].blocks[1].attn.relative_position_bias_table)


def test_resize_rel_pos_table_identity_and_constant():
    t = torch.randn(49, 3)
    assert torch.equal(resize_rel_pos_table(t, (4, 4), (4, 4)), t)
    const = torch.full((49, 2), 0.3)
    out = resize_rel_pos_table(const, (4, 4), (7, 7))
    assert out.shape == (169, 2)
    torch.testing.assert_close(out, torch.full((169, 2), 0.3))


def _save(tmp_path, sd, name='ckpt.pth'):
    path = tmp_path / name
    torch.save({'state_dict': sd, 'meta': {'note': 'plain'}}, path)
    return str(path)


def test_pretrained_init_with_prefix_and_new_output_norms(tmp_path):
    src = _model()  # pretraining layout: out_indices (3,) -> norm3 only
    ckpt = _save(tmp_path, {
        **{f'backbone.{k}': v for k, v in src.state_dict().items()},
        'neck.mask_token': torch.zeros(1, 1, 8)
    })
    dst = MixMAESwin(
        arch=dict(ARCH),
        window_size=(8, 8, 4, 2),
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.'))
    dst.init_weights()
    torch.testing.assert_close(dst.patch_embed.proj.weight,
                               src.patch_embed.proj.weight)
    torch.testing.assert_close(dst.layers[3].blocks[0].mlp.fc2.weight,
                               src.layers[3].blocks[0].mlp.fc2.weight)
    torch.testing.assert_close(dst.norm3.weight, src.norm3.weight)
    # norm0..2 are new for dense use: official (unit) init
    assert torch.equal(dst.norm0.weight, torch.ones(32))


def test_pretrained_of_another_arch_is_refused(tmp_path):
    other = MixMAESwin(
        arch=dict(embed_dims=64, depths=[1, 1, 1, 1],
                  num_heads=[2, 2, 4, 8]), window_size=(4, 4, 4, 2))
    ckpt = _save(tmp_path, other.state_dict())
    model = MixMAESwin(
        arch=dict(ARCH), window_size=(4, 4, 4, 2),
        init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    msg = str(err.value)
    assert 'another arch' in msg
    assert 'shape mismatch: patch_embed.proj.weight checkpoint ' \
        '(64, 3, 4, 4) vs model (32, 3, 4, 4)' in msg
    assert 'missing in checkpoint: layers.2.blocks.1.norm1.weight (128,)' \
        in msg
    # explicit opt-out: loads what matches, keeps the rest
    model = MixMAESwin(
        arch=dict(ARCH), window_size=(4, 4, 4, 2),
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, strict=False))
    model.init_weights()


def test_deprecated_pretrained_argument(tmp_path):
    with pytest.warns(UserWarning, match='deprecated'):
        m = MixMAESwin(arch=dict(ARCH), pretrained='x.pth')
    assert m.init_cfg == dict(type='Pretrained', checkpoint='x.pth')


def test_frozen_stages():
    m = _model(frozen_stages=2, out_indices=(0, 1, 2, 3), drop_path_rate=.1)
    m.train()
    assert not any(p.requires_grad for p in m.patch_embed.parameters())
    assert not any(p.requires_grad for p in m.layers[1].parameters())
    assert not m.norm1.weight.requires_grad and m.norm2.weight.requires_grad
    assert all(p.requires_grad for p in m.layers[2].parameters())
    assert not m.layers[0].training and m.layers[2].training
    with pytest.raises(ValueError, match='frozen_stages'):
        _model(frozen_stages=5)


def test_with_cp_matches_plain():
    plain = _model()
    cp = _model(with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    y1 = plain(x)[0]
    y1.sum().backward()
    g1 = plain.layers[1].blocks[0].mlp.fc1.weight.grad.clone()
    y2 = cp(x)[0]
    y2.sum().backward()
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(g1, cp.layers[1].blocks[0].mlp.fc1.weight.grad)


def test_layer_depth_official_grouping():
    m = MixMAESwin('base')
    table = {
        'patch_embed.proj.weight': 0,
        'layers.0.blocks.0.attn.qkv.weight': 1,
        'layers.0.blocks.1.norm1.weight': 2,
        'layers.0.downsample.reduction.weight': 3,  # with stage 1 block 0
        'layers.1.blocks.0.mlp.fc1.bias': 3,
        'layers.1.downsample.norm.weight': 5,
        'layers.2.blocks.0.attn.relative_position_bias_table': 5,
        'layers.2.blocks.17.mlp.fc2.weight': 22,
        'layers.2.downsample.reduction.weight': 23,
        'layers.3.blocks.0.norm2.bias': 23,
        'layers.3.blocks.1.attn.proj.weight': 24,
        'norm3.weight': 24,
    }
    for name, depth in table.items():
        assert m.get_layer_depth(name) == (depth, 26), name
        assert m.get_layer_depth('backbone.' + name,
                                 'backbone.') == (depth, 26)
    assert m.get_layer_depth('head.fc.weight', 'backbone.') == (24, 26)
