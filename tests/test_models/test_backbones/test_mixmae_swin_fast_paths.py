"""Whole stages on token layouts against the padded-window oracle
(tests/reference/padded_window.py), and the memory options."""
import pytest
import torch
from mmpretrain.registry import MODELS

from mixmae_mm.models.layers.mixing import (mix_images, sample_mix_mask,
                                            upsample_mask)
from mixmae_mm.models.layers.token_layout import TokenLayout
from reference import padded_window as ref_pw


def _build(cfg, **kwargs):
    model = MODELS.build(dict(cfg, **kwargs))
    model.init_weights()
    with torch.no_grad():  # non-trivial biases
        for name, p in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                p.normal_()
    return model


@pytest.mark.parametrize('size,per_pair,masked,ratio,counted',
                         [((64, 64), False, True, 0.5, False),
                          ((64, 64), False, True, 0.5, True),
                          ((64, 64), False, True, 0.75, True),
                          ((96, 96), True, True, 0.5, True),
                          ((64, 96), False, True, 0.5, True),
                          ((50, 70), False, False, None, False),
                          ((64, 64), False, False, None, False)])
def test_stages_equal_padded_window_oracle(tiny_backbone_cfg, size,
                                           per_pair, masked, ratio, counted,
                                           attention_path):
    """Every stage on either path equals the oracle; with the partner
    count, the static path's global stages are the images' cells."""
    # windows 6/4/4/2: stage grids 16/8/4/2 (or 24/...) are not multiples of
    # 6, so cut border windows are exercised
    model = _build(tiny_backbone_cfg, window_size=(6, 4, 4, 2))
    b = 4
    grid = (size[0] // 32, size[1] // 32)
    mask = sample_mix_mask(b, grid, ratio, per_pair=per_pair) \
        if masked else None
    num_partner = int(grid[0] * grid[1] * ratio) if counted else None
    x = torch.randn(b, 3, *size)
    if mask is not None:
        x = mix_images(x, mask)
    else:
        x = torch.nn.functional.pad(x,
                                    (0, (-size[1]) % 32, 0, (-size[0]) % 32))
    tokens = model.patch_embed(x)
    tokens = tokens + model.pos_embed(tokens.shape[1:3], tokens)
    plan = model.plan_layouts if attention_path == 'cells' else \
        model.dense_layouts
    layouts = [None] * 4 if mask is None else plan(
        mask, size, num_partner=num_partner)
    if attention_path == 'static' and num_partner and not per_pair:
        # the split is taken where the window covers the map (64 px:
        # stages 3-4; none at 96 px) and only there
        kinds = [isinstance(lay, TokenLayout) for lay in layouts]
        assert kinds == [False, False] + [size == (64, 64)] * 2
    for i, stage in enumerate(model.layers):
        groups = None
        if mask is not None:
            groups = upsample_mask(mask, 8 >> i).long()  # (M, H, W)
        with torch.no_grad():
            ref = ref_pw.stage(stage, tokens, groups)
            out, nxt = stage(tokens, layouts[i])
        torch.testing.assert_close(out, ref)
        tokens = nxt


@pytest.mark.parametrize('with_cp,stages', [
    (True, [0, 1, 2, 3]), ([0, 1], [0, 1]), ([-1], [3])])
def test_with_cp_gives_the_same_gradients(tiny_backbone_cfg, with_cp,
                                          stages, attention_path):
    x = torch.randn(4, 3, 64, 64)
    mask = sample_mix_mask(4, (2, 2), 0.5)
    grads = []
    for flag in (False, with_cp):
        torch.manual_seed(0)
        model = _build(tiny_backbone_cfg, with_cp=flag)
        model(mix_images(x, mask), mask)[-1].square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert [i for i, stage in enumerate(model.layers)
            if stage.with_cp] == stages
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, msg=name)
    with pytest.raises(ValueError, match='stage indices'):
        _build(tiny_backbone_cfg, with_cp=[4])


def test_bf16_autocast_loss_close_to_fp32(tiny_mixmae_cfg, attention_path):
    model = MODELS.build(tiny_mixmae_cfg)
    model.init_weights()
    imgs = torch.randn(4, 3, 64, 64)
    mask = sample_mix_mask(4, (2, 2), 0.5)
    inputs = [imgs, mix_images(imgs, mask), mask]
    ref = model.loss(inputs, None)['loss']
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = model.loss(inputs, None)['loss']
    assert torch.isfinite(low)
    assert abs(low.item() - ref.item()) <= 1e-2 * abs(ref.item())
    low.backward()
    grad = model.backbone.layers[0].blocks[0].attn.relative_position_bias_table
    assert grad.grad is not None and torch.isfinite(grad.grad).all()
