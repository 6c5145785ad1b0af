"""The encoder's checkpoint filter (models/utils/ckpt_convert.py) and the
loads built on it (models/utils/pretrained.py)."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import save_checkpoint

from mixmae_mm.models.backbones import MixMAESwin, SimMIMMixMAESwin
from mixmae_mm.models.layers.rel_pos import resize_rel_pos_table
from mixmae_mm.models.utils.ckpt_convert import (DERIVED_KEYS,
                                                 filter_encoder_state_dict,
                                                 is_derived_key)
from mixmae_mm.models.utils.pretrained import (filter_encoder_state_dict_,
                                               load_pretrained_encoder)

ARCH = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
TABLE = 'layers.{}.blocks.0.attn.relative_position_bias_table'


@pytest.fixture
def log():
    """Messages of mmengine's current logger during the test."""
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def _encoder(cls=MixMAESwin, windows=(4, 4, 4, 2)):
    return cls(arch=dict(ARCH), window_size=windows)


def _checkpoint(src):
    """``src``'s weights under ``backbone.`` with the derived tensors an
    official / mmpretrain checkpoint carries, and other modules' keys."""
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['backbone.layers.0.blocks.0.attn.relative_position_index'] = \
        torch.zeros(16, 16, dtype=torch.long)
    sd['backbone.absolute_pos_embed'] = torch.zeros(1, 256, 32)
    sd['backbone.layers.1.blocks.0.attn_mask'] = torch.zeros(4, 16, 16)
    sd['neck.decoder_pos_embed'] = torch.zeros(1, 4, 64)
    sd['neck.mask_token'] = torch.zeros(1, 1, 64)
    return sd


def test_derived_keys_have_one_definition():
    assert set(DERIVED_KEYS) == {
        'relative_position_index', 'absolute_pos_embed', 'decoder_pos_embed',
        'attn_mask'
    }
    assert is_derived_key('backbone.layers.0.blocks.1.attn_mask')
    assert is_derived_key('decoder_pos_embed')
    assert not is_derived_key('layers.0.blocks.0.attn.'
                              'relative_position_bias_table')


def test_filter_drops_derived_resizes_tables_keeps_other_keys():
    src = _encoder()
    dst = _encoder(windows=(8, 6, 4, 2))
    sd = _checkpoint(src)
    before = {k: v.shape for k, v in sd.items()}
    out, report = filter_encoder_state_dict(sd, dst, prefix='backbone.')
    assert report['derived'] == [
        'backbone.layers.0.blocks.0.attn.relative_position_index',
        'backbone.absolute_pos_embed', 'backbone.layers.1.blocks.0.attn_mask'
    ]
    assert report['pretrain_only'] == []
    assert report['resized'] == {
        'backbone.' + TABLE.format(0): ((4, 4), (8, 8)),
        'backbone.' + TABLE.format(1): ((4, 4), (6, 6)),
    }
    for stage, window in ((0, (8, 8)), (1, (6, 6))):
        key = 'backbone.' + TABLE.format(stage)
        ref = resize_rel_pos_table(sd[key], (4, 4), window)  # (15*15, nH)
        assert out[key].shape == ref.shape
        assert torch.equal(out[key], ref)
        assert out[key].shape == dst.get_parameter(
            TABLE.format(stage)).shape
    # same windows: the very tensor; other modules' keys: untouched, even a
    # derived name (the decoder's is not the encoder's business here)
    key = 'backbone.' + TABLE.format(2)
    assert out[key] is sd[key]
    for key in ('neck.decoder_pos_embed', 'neck.mask_token',
                'backbone.patch_embed.proj.weight'):
        assert out[key] is sd[key]
    assert list(out) == [k for k in sd if k not in report['derived']]
    # pure: the input is as it was
    assert {k: v.shape for k, v in sd.items()} == before
    # the result loads strictly
    dst.load_state_dict({k[9:]: v for k, v in out.items()
                         if k.startswith('backbone.')}, strict=True)


def test_filter_leaves_mismatched_heads_for_the_load_to_report():
    sd = {TABLE.format(0): torch.zeros(49, 3)}  # window 4, 3 heads (not 1)
    out, report = filter_encoder_state_dict(sd, _encoder())
    assert out[TABLE.format(0)] is sd[TABLE.format(0)]
    assert report['resized'] == {}


def test_filter_without_target_only_drops_derived_keys():
    sd = _checkpoint(_encoder(windows=(8, 8, 4, 2)))
    out, report = filter_encoder_state_dict(sd)
    assert set(report['derived']) == {
        k for k in sd if k.rsplit('.', 1)[-1] in DERIVED_KEYS
    }
    assert 'neck.decoder_pos_embed' in report['derived']
    assert report['resized'] == {} and report['pretrain_only'] == []
    assert set(out) == set(sd) - set(report['derived'])


def test_filter_drops_pretrain_only_keys_only_when_target_lacks_them():
    simmim = _encoder(SimMIMMixMAESwin)
    sd = {f'backbone.{k}': v for k, v in simmim.state_dict().items()}
    sd['neck.mask_token'] = torch.zeros(1, 1, 64)
    out, report = filter_encoder_state_dict(sd, _encoder(), 'backbone.')
    assert report['pretrain_only'] == ['backbone.mask_token']
    assert 'backbone.mask_token' not in out
    assert out['neck.mask_token'] is sd['neck.mask_token']  # not under prefix
    out, report = filter_encoder_state_dict(sd, _encoder(SimMIMMixMAESwin),
                                            'backbone.')
    assert report['pretrain_only'] == []
    assert out['backbone.mask_token'] is sd['backbone.mask_token']
    out, report = filter_encoder_state_dict(sd)  # no target: nothing known
    assert 'backbone.mask_token' in out


def test_in_place_filter_of_the_load_hook(log):
    src = _encoder()
    dst = _encoder(windows=(8, 4, 4, 2))
    sd = _checkpoint(src)
    sd['backbone.mask_token'] = torch.zeros(1, 1, 1, 32)
    same = sd
    report = filter_encoder_state_dict_(dst, sd, 'backbone.')
    assert sd is same  # the dict load_state_dict walks
    assert not set(report['derived'] + report['pretrain_only']) & set(sd)
    key = 'backbone.' + TABLE.format(0)
    assert sd[key].shape == (15 * 15, 1)
    assert f'resized {key} from window (4, 4) to (8, 8)' in log
    assert "MixMAESwin: pretraining-only keys dropped: " \
        "['backbone.mask_token']" in log


def _save(tmp_path, model, prefix=''):
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({
        'state_dict': {prefix + k: v
                       for k, v in model.state_dict().items()}
    }, path)
    return path


def test_load_pretrained_encoder_filters_and_reports(tmp_path, log):
    simmim = _encoder(SimMIMMixMAESwin)
    path = _save(tmp_path, simmim, 'backbone.')
    dst = MixMAESwin(
        arch=dict(ARCH), window_size=(8, 4, 4, 2), out_indices=(0, 3))
    load_pretrained_encoder(dst, dict(checkpoint=path, prefix='backbone.'))
    ref = resize_rel_pos_table(
        simmim.get_parameter(TABLE.format(0)), (4, 4), (8, 8))
    torch.testing.assert_close(dst.get_parameter(TABLE.format(0)), ref)
    assert log[-1] == (
        f'MixMAESwin: loaded {len(dst.state_dict()) - 2} tensors from '
        f"{path}; new output norms initialised: ['norm0.weight', "
        "'norm0.bias']; pretraining-only keys dropped: ['mask_token']")
    # of another arch: one error listing the mismatches
    other = MixMAESwin(
        arch=dict(embed_dims=64, depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 8]),
        window_size=(4, 4, 4, 2))
    with pytest.raises(ValueError, match='another arch') as err:
        load_pretrained_encoder(
            _encoder(), dict(checkpoint=_save(tmp_path, other)))
    assert 'shape mismatch: patch_embed.proj.weight checkpoint ' \
        '(64, 3, 4, 4) vs model (32, 3, 4, 4)' in str(err.value)
