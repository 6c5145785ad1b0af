import torch

from mixmae_mm.models.heads import MixMAEPretrainHead
from mixmae_mm.models.layers.mixing import sample_mix_mask


def _reference_loss(pred, imgs, mask, p=32):
    """Loop-by-loop restatement of the official loss."""
    b, c, hh, ww = imgs.shape
    h, w = hh // p, ww // p
    x1, x2 = pred[:b], pred[b:]
    m = mask.reshape(-1, h * w)
    total, count = 0., 0
    for i in range(b):
        mi = m[i if m.shape[0] > 1 else 0]
        for r in range(h):
            for col in range(w):
                l = r * w + col
                patch = imgs[i, :, r * p:(r + 1) * p, col * p:(col + 1) * p]
                t = patch.permute(1, 2, 0).reshape(-1)  # (p, q, c) order
                t = (t - t.mean()) / (t.var() + 1e-6).sqrt()
                rec = x1[i, l] if mi[l] else x2[b - 1 - i, l]
                total += ((rec - t)**2).sum()
                count += t.numel()
    return total / count


def test_loss_matches_reference():
    head = MixMAEPretrainHead(patch_size=32, norm_pix=True)
    imgs = torch.randn(4, 3, 64, 96)
    mask = sample_mix_mask(4, (2, 3), 0.5)
    pred = torch.randn(8, 6, 32 * 32 * 3)
    torch.testing.assert_close(
        head.loss(pred, imgs, mask), _reference_loss(pred, imgs, mask))
    per_pair = sample_mix_mask(4, (2, 3), 0.5, per_pair=True)
    torch.testing.assert_close(
        head.loss(pred, imgs, per_pair),
        _reference_loss(pred, imgs, per_pair))


def test_perfect_prediction_gives_zero_loss():
    head = MixMAEPretrainHead()
    imgs = torch.randn(2, 3, 64, 64)
    mask = sample_mix_mask(2, (2, 2), 0.5)
    target = head.construct_target(imgs)  # (B, L, D)
    m = mask.flatten(1)[..., None]
    # branch 1 must hold targets at m=True, branch 2 (flipped) at m=False
    pred = torch.cat([torch.where(m, target, 0.), torch.where(
        m, 0., target).flip(0)])
    assert head.loss(pred, imgs, mask).item() < 1e-10
    assert head.loss(pred.flip(0), imgs, mask).item() > 0.5


def test_norm_pix_target_statistics():
    t = MixMAEPretrainHead().construct_target(torch.rand(2, 3, 64, 64) * 5)
    assert t.shape == (2, 4, 3072)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 4), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(t.var(-1), torch.ones(2, 4), atol=1e-3,
                               rtol=0)


def test_single_reconstruction_loss_on_hidden_positions_only():
    head = MixMAEPretrainHead(dual_reconstruction=False)
    imgs = torch.randn(4, 3, 64, 96)
    mask = sample_mix_mask(4, (2, 3), 0.5)  # 3 of 6 positions hidden
    target = head.construct_target(imgs)  # (B, L, D)
    pred = torch.randn(4, 6, 3072)
    m = mask.flatten(1)[0]
    ref = ((pred[:, m] - target[:, m])**2).mean()
    torch.testing.assert_close(head.loss(pred, imgs, mask), ref)
    # visible positions do not count: predicting them wrongly costs nothing
    perfect = torch.where(m[None, :, None], target, 100.)
    assert head.loss(perfect, imgs, mask).item() < 1e-10
    assert head.predict(pred, mask) is pred
