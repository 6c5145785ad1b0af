"""Property-based tests of the mix mask and the un-mix
(mixmae_mm.models.layers.mixing) over random sizes, ratios, batch sizes
and dtypes."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixmae_mm.models.layers.mixing import (mix_images, sample_mix_mask,
                                            unmix, upsample_mask)

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.uint8]
#: Strides of the four Swin stages relative to the input pixels.
STAGE_STRIDES = (4, 8, 16, 32)

cases = st.fixed_dictionaries(
    dict(
        b=st.integers(1, 5),
        h=st.integers(1, 4),  # stride-32 grid: images of 32..128 px
        w=st.integers(1, 4),
        ratio=st.floats(0.01, 0.99, allow_nan=False),
        per_pair=st.booleans(),
        dtype=st.sampled_from(DTYPES),
        seed=st.integers(0, 2**31 - 1),
    ))

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def _draw(c):
    g = torch.Generator().manual_seed(c['seed'])
    mask = sample_mix_mask(
        c['b'], (c['h'], c['w']), c['ratio'], per_pair=c['per_pair'],
        generator=g)
    if c['dtype'] == torch.uint8:
        x = torch.randint(0, 256, (c['b'], 3, 32 * c['h'], 32 * c['w']),
                          generator=g, dtype=torch.uint8)
    else:
        x = torch.randn(c['b'], 3, 32 * c['h'], 32 * c['w'],
                        generator=g).to(c['dtype'])
    return mask, x


@SETTINGS
@given(cases)
def test_mask_shape_count_and_pair_symmetry(c):
    mask, _ = _draw(c)
    m = c['b'] if c['per_pair'] else 1
    assert mask.shape == (m, c['h'], c['w']) and mask.dtype == torch.bool
    want = int(c['h'] * c['w'] * c['ratio'])
    assert (mask.flatten(1).sum(1) == want).all()
    if c['per_pair']:
        assert torch.equal(mask, mask.flip(0))  # i and B-1-i share


@SETTINGS
@given(cases)
def test_mixing_is_stride32_aligned(c):
    mask, x = _draw(c)
    mixed = mix_images(x, mask)
    assert mixed.dtype == x.dtype and mixed.shape == x.shape
    b, _, hh, ww = x.shape
    # every 32 x 32 block of every mixed image is one whole block of
    # either the image itself (mask False) or its partner (mask True)
    blocks = lambda t: t.reshape(b, 3, c['h'], 32, c['w'], 32)  # noqa
    # one dim at a time: torch < 2.2 refuses a tuple of dims in all()
    own = (blocks(mixed) == blocks(x)).all(5).all(3).all(1)  # (B, h, w)
    partner = (blocks(mixed) == blocks(x.flip(0))).all(5).all(3).all(1)
    mm = mask.expand(b, -1, -1)
    assert (partner | ~mm).all() and (own | mm).all()


@SETTINGS
@given(cases)
def test_mask_is_identical_across_stage_resolutions(c):
    mask, _ = _draw(c)
    pixel = upsample_mask(mask, 32)  # what mix_images uses
    for stride in STAGE_STRIDES:
        stage = upsample_mask(mask, 32 // stride)  # what the encoder uses
        assert stage.shape == (mask.shape[0], c['h'] * 32 // stride,
                               c['w'] * 32 // stride)
        # the stage mask is the pixel mask sampled at the stage stride,
        # and pooling it back to stride 32 gives the mask itself
        assert torch.equal(stage, pixel[:, ::stride, ::stride])
        s = 32 // stride
        pooled = stage.reshape(-1, c['h'], s, c['w'], s)
        assert torch.equal(pooled.all(4).all(2), mask)
        assert torch.equal(pooled.any(4).any(2), mask)


def _patchify(x):
    """(B, C, 32h, 32w) -> (B, h*w, 32*32*C) tokens."""
    b, ch, hh, ww = x.shape
    t = x.reshape(b, ch, hh // 32, 32, ww // 32, 32)
    return t.permute(0, 2, 4, 3, 5, 1).reshape(b, -1, 32 * 32 * ch)


@SETTINGS
@given(cases)
def test_unmix_reproduces_each_image_exactly_once(c):
    mask, x = _draw(c)
    mixed = mix_images(x, mask)
    m = mask.flatten(1)[..., None]  # (M, L, 1)
    # An oracle decoder. Branch 1 (own tokens kept) predicts, for sample
    # i, the blocks i lost to its partner (mask True): they sit in the
    # partner's mixed image. Branch 2 (partner tokens kept) predicts, in
    # row j, the blocks of image B-1-j at mask False: also in the mixed
    # image of row B-1-j. Everything else is garbage that must not leak.
    truth = _patchify(mixed.flip(0))
    garbage = torch.full_like(truth, 7 if x.dtype == torch.uint8 else 1e4)
    x1 = torch.where(m, truth, garbage)
    x2 = torch.where(~m, truth, garbage)
    rec = unmix(x1, x2, mask)
    assert rec.dtype == x.dtype
    assert torch.equal(rec, _patchify(x))
    # every position of every image is taken from exactly one branch
    # token, no decoder token is used twice, and int(L * ratio) of each
    # image's positions come from branch 1
    b, n = x.shape[0], m.shape[1]
    ids1 = torch.arange(b * n).view(b, n, 1)
    src = unmix(ids1, ids1 + b * n, mask)  # (B, L, 1) source token ids
    assert src.unique().numel() == b * n
    want = int(c['h'] * c['w'] * c['ratio'])
    assert ((src < b * n).flatten(1).sum(1) == want).all()
