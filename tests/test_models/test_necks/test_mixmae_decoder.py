import torch

from mixmae_mm.models.layers.mixing import sample_mix_mask
from mixmae_mm.models.layers.pos_embed import sincos_pos_embed_2d
from mixmae_mm.models.necks import MixMAEPretrainDecoder


def test_dual_branch_construction_and_shape():
    neck = MixMAEPretrainDecoder(
        in_channels=32, embed_dims=16, depth=1, num_heads=2, patch_size=32)
    neck.init_weights()
    b, h, w = 4, 2, 3
    latent = torch.randn(b, 32, h, w)
    mask = sample_mix_mask(b, (h, w), 0.5)
    seen = {}
    neck.decoder_blocks[0].register_forward_pre_hook(
        lambda mod, args: seen.setdefault('x', args[0]))
    out = neck(latent, mask)
    assert out.shape == (2 * b, h * w, 32 * 32 * 3)

    x = seen['x']  # (2B, L, D) input of the first block
    pos = sincos_pos_embed_2d(16, (h, w))
    tokens = neck.decoder_embed(latent.flatten(2).transpose(1, 2)) + pos
    token = neck.mask_token + pos  # (1, L, D)
    m = mask.flatten(1)[..., None]
    # branch 1 keeps own tokens, the mask token sits on partner positions
    torch.testing.assert_close(x[:b], torch.where(m, token, tokens))
    # branch 2 keeps the partner's tokens, masks the own positions
    torch.testing.assert_close(x[b:], torch.where(m, tokens, token))
    assert not torch.equal(x[:b], x[b:])


def test_mask_token_gets_gradient():
    neck = MixMAEPretrainDecoder(
        in_channels=8, embed_dims=16, depth=1, num_heads=2)
    neck.init_weights()
    out = neck(torch.randn(2, 8, 2, 2), sample_mix_mask(2, (2, 2), 0.5))
    out.sum().backward()
    assert neck.mask_token.grad.abs().sum() > 0


def test_single_reconstruction_is_branch_one():
    torch.manual_seed(0)
    dual = MixMAEPretrainDecoder(
        in_channels=32, embed_dims=16, depth=1, num_heads=2)
    dual.init_weights()
    single = MixMAEPretrainDecoder(
        in_channels=32, embed_dims=16, depth=1, num_heads=2,
        dual_reconstruction=False)
    single.load_state_dict(dual.state_dict())
    latent = torch.randn(4, 32, 2, 3)
    mask = sample_mix_mask(4, (2, 3), 0.5)
    out = single(latent, mask)
    assert out.shape == (4, 6, 32 * 32 * 3)
    torch.testing.assert_close(out, dual(latent, mask)[:4])
