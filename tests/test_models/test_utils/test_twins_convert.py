"""Twins export: mmseg's and mmpretrain's own classes load the MixMAE
encoder's weights strictly and compute the same features."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmpretrain.models.backbones.twins import PCPVT as PretrainPCPVT
from mmpretrain.models.backbones.twins import SVT as PretrainSVT
from mmseg.models.backbones.twins import SVT as SegSVT

from mixmae_mm.models.backbones import MixMAETwins
from mixmae_mm.models.utils.ckpt_convert import UnknownKeysError
from mixmae_mm.models.utils.twins_convert import export_twins

TINY_SVT = dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4],
                mlp_ratios=[2, 4, 2, 3], depths=[2, 3, 1, 2],
                window_sizes=[7, 7, 7, 7])
TINY_PCPVT = dict(TINY_SVT, window_sizes=None)
REPO = Path(__file__).resolve().parents[3]


def _encoder(arch):
    torch.manual_seed(0)
    model = MixMAETwins(arch, out_indices=(0, 1, 2, 3))
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return model.eval()


def _pretraining_state(model):
    """A pretraining checkpoint's state dict: backbone, neck and head."""
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    state['neck.mask_token'] = torch.zeros(1, 1, 8)
    return state


def _mmpretrain_twin(model):
    arch = dict(embed_dims=model.num_features, depths=model.depths,
                num_heads=model.num_heads, patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2], mlp_ratios=model.mlp_ratios,
                sr_ratios=model.sr_ratios)
    if model.window_sizes is None:
        return PretrainPCPVT(arch, out_indices=(0, 1, 2, 3), qkv_bias=True,
                             norm_after_stage=model.norm_after_stage)
    return PretrainSVT(dict(arch, window_sizes=model.window_sizes),
                       out_indices=(0, 1, 2, 3), qkv_bias=True,
                       norm_after_stage=model.norm_after_stage)


@pytest.mark.parametrize('arch', [TINY_SVT, TINY_PCPVT], ids=['svt', 'pcpvt'])
def test_mmpretrain_export_loads_strictly_and_computes_the_same(arch):
    """mmpretrain's class with the export: strict load, every tensor as
    exported (q/kv: the rows of in_proj), same features at 224 px and at a
    size whose LSA windows are padded on both sides."""
    model = _encoder(arch)
    out, report = export_twins(_pretraining_state(model), 'mmpretrain')
    assert report['dropped'] == ['neck.mask_token']
    theirs = _mmpretrain_twin(model).eval()
    theirs.load_state_dict(out, strict=True)
    for key, value in theirs.state_dict().items():
        assert torch.equal(value, out[key]), key
    src = model.state_dict()
    w = src['layers.0.1.attn.attn.in_proj_weight']
    c = w.shape[1]
    assert torch.equal(out['stages.0.1.attn.q.weight'], w[:c])
    assert torch.equal(out['stages.0.1.attn.kv.weight'], w[c:])
    for size in [(224, 224), (64, 96)]:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            for a, b in zip(model(x), theirs(x)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_mmseg_export_is_the_backbone_without_prefix():
    model = _encoder(TINY_SVT)
    state = _pretraining_state(model)
    out, report = export_twins(state, 'mmseg')
    assert report['dropped'] == ['neck.mask_token']
    assert list(out) == list(model.state_dict())
    theirs = SegSVT(embed_dims=model.num_features, num_heads=model.num_heads,
                    mlp_ratios=model.mlp_ratios, depths=model.depths,
                    qkv_bias=True, sr_ratios=[8, 4, 2, 1],
                    windiow_sizes=[7] * 4)
    theirs.load_state_dict(out, strict=True)
    assert all(out[k] is state[f'backbone.{k}'] for k in out)


def test_unknown_keys_and_targets_are_refused():
    model = _encoder(TINY_SVT)
    state = _pretraining_state(model)
    state['backbone.cls_token'] = torch.zeros(1)
    with pytest.raises(UnknownKeysError, match='backbone.cls_token'):
        export_twins(state, 'mmseg')
    with pytest.raises(UnknownKeysError, match='no Twins backbone keys'):
        export_twins({'neck.x': torch.zeros(1)}, 'mmseg')
    with pytest.raises(ValueError, match='target must be one of'):
        export_twins(_pretraining_state(model), 'mmdet')


def test_cli_writes_a_weights_only_file(tmp_path):
    model = _encoder(TINY_PCPVT)
    src = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=_pretraining_state(model), meta=dict()), src)
    dst = tmp_path / 'out.pth'
    proc = subprocess.run(
        [sys.executable, 'tools/model_converters/mixmae_twins_export.py',
         str(src), str(dst), '--to', 'mmpretrain', '--no-sha-suffix',
         '--quiet'], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = torch.load(dst, map_location='cpu', weights_only=True)
    expected, _ = export_twins(_pretraining_state(model), 'mmpretrain')
    assert list(loaded) == list(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    bad = subprocess.run(
        [sys.executable, 'tools/model_converters/mixmae_twins_export.py',
         str(src), str(dst), '--prefix', 'neck.'], cwd=REPO,
        capture_output=True, text=True)
    assert bad.returncode == 1 and 'neck.mask_token' in bad.stdout + \
        bad.stderr
