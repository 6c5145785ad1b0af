"""The encoder contract (:class:`MixMAEEncoder`) as all three families
keep it: the mix grid and its checks, layer ids for layer decay, the
``Pretrained`` init."""
import pytest
import torch
from mmpretrain.registry import MODELS

from mixmae_mm.models.backbones.base_encoder import MixMAEEncoder

FAMILIES = ['swin', 'pvtv2', 'twins']
#: The first patch embedding of each family (mmdet's / mmseg's names).
STEMS = dict(swin='patch_embed.', pvtv2='layers.0.0.', twins='patch_embeds.0.')


@pytest.fixture
def encoder_of(family_mixmae_cfg):

    def build(family):
        torch.manual_seed(0)
        return MODELS.build(family_mixmae_cfg(family)['backbone'])

    return build


@pytest.mark.parametrize('family', FAMILIES)
def test_mix_grid_and_mask_checks(encoder_of, family):
    enc = encoder_of(family)
    assert isinstance(enc, MixMAEEncoder)
    assert enc.mix_grid == 32 == enc.out_strides[-1]
    assert enc.check_mix_mask(torch.zeros(1, 2, 3, dtype=torch.bool), 4,
                              (64, 96)) == 32
    assert enc.check_mix_mask(torch.zeros(4, 2, 3, dtype=torch.bool), 4,
                              (64, 96)) == 32
    for bad in [torch.zeros(2, 2, 3), torch.zeros(1, 3, 2),
                torch.zeros(2, 3)]:
        with pytest.raises(ValueError, match=r'mix_mask must have shape'
                           r' \(1 or 4, .*\(2, 3\)|\(1 or 4, 2, 3\)'):
            enc.check_mix_mask(bad, 4, (64, 96))
    with pytest.raises(ValueError, match='divisible by 32'):
        enc.check_mix_mask(torch.zeros(1, 2, 3), 4, (64, 80))
    # a mask on the stride-4 grid: the fine-mask ablation, windows only
    fine = torch.zeros(1, 16, 24, dtype=torch.bool)
    if family == 'swin':
        assert enc.check_mix_mask(fine, 4, (64, 96)) == 4
    else:
        with pytest.raises(ValueError, match='no finer masks'):
            enc.check_mix_mask(fine, 4, (64, 96))


@pytest.mark.parametrize('family', FAMILIES)
def test_layer_ids_cover_every_block_once(encoder_of, family):
    """Stem 0; the blocks' parameters use each id 1..sum(depths) (one id
    per block); nothing above the last block; neck/head (outside the
    prefix) with the last block."""
    enc = encoder_of(family)
    total = sum(enc.depths)
    ids = {}
    for name, _ in enc.named_parameters():
        layer, num_layers = enc.get_layer_depth('backbone.' + name,
                                                'backbone.')
        assert num_layers == total + 2
        assert 0 <= layer <= total, (name, layer)
        ids.setdefault(layer, []).append(name)
    assert set(range(1, total + 1)) <= set(ids)
    stem = [n for n, _ in enc.named_parameters()
            if n.startswith(STEMS[family])]
    assert stem and ids[0] == stem
    assert enc.get_layer_depth('head.fc.weight', 'backbone.') == \
        (total, total + 2)


@pytest.mark.parametrize('family', FAMILIES)
def test_pretrained_init_loads_every_tensor(encoder_of, family, tmp_path):
    src = encoder_of(family)
    src.init_weights()
    path = tmp_path / 'enc.pth'
    torch.save({'state_dict': {f'backbone.{k}': v + 1.0
                               for k, v in src.state_dict().items()
                               if v.is_floating_point()}}, path)
    dst = encoder_of(family)
    dst.init_cfg = dict(type='Pretrained', checkpoint=str(path),
                        prefix='backbone.')
    dst.init_weights()
    for k, v in src.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(dst.state_dict()[k], v + 1.0), k
