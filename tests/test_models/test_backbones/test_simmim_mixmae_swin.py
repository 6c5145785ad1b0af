import pytest
import torch
from mmengine.runner import save_checkpoint
from mmpretrain.registry import MODELS

TINY = dict(
    arch=dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]),
    window_size=(4, 4, 4, 2))


def _build(**kwargs):
    model = MODELS.build(dict(type='SimMIMMixMAESwin', **TINY, **kwargs))
    model.init_weights()
    return model.eval()


def _patch_mask(b=2, grid=(2, 2), ratio=0.5):
    """SimMIM-style mask: 32-px blocks, repeated on the 4-px patch grid."""
    blocks = (torch.rand(b, *grid) < ratio).long()
    return blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)


def test_masked_patches_are_invisible():
    model = _build()
    x = torch.randn(2, 3, 64, 64)
    mask = _patch_mask()
    mask[:, :8, :8] = 1  # at least one block hidden
    mask[:, 8:, 8:] = 0  # and one visible
    pixels = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).bool()
    other = x.clone()
    other[pixels[:, None].expand_as(x)] = 5.
    with torch.no_grad():
        a = model(x, mask)[0]
        b = model(other, mask)[0]
        c = model(x, torch.zeros_like(mask))[0]
    torch.testing.assert_close(a, b)  # only the [MASK] token is seen there
    # with nothing masked it is the plain encoder
    torch.testing.assert_close(c, model(x)[0])
    assert (a - c).abs().max() > 1e-3


def test_mask_shape_error():
    model = _build()
    with pytest.raises(ValueError, match=r'mask must have shape \(2, 16, 16'):
        model(torch.randn(2, 3, 64, 64), torch.zeros(2, 2, 2))


def test_simmim_algorithm_trains_the_token():
    model = MODELS.build(
        dict(
            type='SimMIM',
            backbone=dict(type='SimMIMMixMAESwin', **TINY),
            neck=dict(
                type='SimMIMLinearDecoder', in_channels=256,
                encoder_stride=32),
            head=dict(
                type='SimMIMHead', patch_size=4,
                loss=dict(
                    type='PixelReconstructionLoss', criterion='L1',
                    channel=3)),
            data_preprocessor=dict(type='SelfSupDataPreprocessor')))
    model.init_weights()
    from mmpretrain.structures import DataSample
    samples = [DataSample() for _ in range(2)]
    for s, m in zip(samples, _patch_mask(ratio=0.6)):
        s.mask = m
    loss = model.loss(torch.randn(2, 3, 64, 64), samples)['loss']
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.mask_token.grad.abs().sum() > 0


def test_finetuning_load_drops_the_token(tmp_path):
    pre = _build()
    ckpt = tmp_path / 'simmim.pth'
    state = {f'backbone.{k}': v for k, v in pre.state_dict().items()}
    save_checkpoint({'state_dict': state}, str(ckpt))
    ft = MODELS.build(
        dict(
            type='MixMAESwin',
            **TINY,
            init_cfg=dict(
                type='Pretrained', checkpoint=str(ckpt),
                prefix='backbone.')))
    ft.init_weights()  # strict: only the token may be left out
    assert not hasattr(ft, 'mask_token')
    torch.testing.assert_close(ft.layers[2].blocks[0].attn.qkv.weight,
                               pre.layers[2].blocks[0].attn.qkv.weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ft.eval()(x)[0], pre(x)[0])
