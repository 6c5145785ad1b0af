"""Checkpoint converters and the publish step (tools/model_converters/, key
mapping in mixmae_mm/models/utils/ckpt_convert.py).

Official checkpoints are synthesised by the transcription of the official
Sense-X/MixMIM modules in tests/reference/official_mixmim.py; the converted
model must reproduce its outputs.
"""
import argparse
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmpretrain.registry import MODELS

from mixmae_mm.models.layers.mixing import (mix_images, sample_mix_mask,
                                            upsample_mask)
from reference.official_mixmim import OfficialMixMIM, official_key_layout
from mixmae_mm.models.utils.ckpt_convert import (ConversionError,
                                                 UnknownKeysError,
                                                 convert_official_mixmim,
                                                 infer_arch)

ROOT = Path(__file__).resolve().parents[2]
CONVERTERS = ROOT / 'tools' / 'model_converters'

# tiny arch: stage grids 16/8/4/2 at 64 px, windows 4/4/4/2
EMBED, DEPTHS, HEADS, WINDOWS = 32, [1, 1, 1, 1], [1, 2, 4, 8], [4, 4, 4, 2]
DEC_DIM, DEC_DEPTH, DEC_HEADS = 64, 1, 4
IMG = 64


def _tool(name):
    """Import a tools/model_converters script as a module."""
    spec = importlib.util.spec_from_file_location(name,
                                                  CONVERTERS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the file-level part of conversion and the publish step; registered so that
# the scripts' own ``from checkpoint_io import ...`` gets this module
checkpoint_io = sys.modules['checkpoint_io'] = _tool('checkpoint_io')


def _official(pretrain=True):
    model = OfficialMixMIM(EMBED, DEPTHS, HEADS, WINDOWS, IMG, pretrain,
                           dec_dim=DEC_DIM, dec_depth=DEC_DEPTH,
                           dec_heads=DEC_HEADS)
    with torch.no_grad():  # random values everywhere but the fixed tables
        for name, p in model.named_parameters():
            if not name.endswith('pos_embed'):
                p.normal_(0, 0.2 if p.dim() == 1 else 0.1)
    assert set(model.state_dict()) == official_key_layout(
        DEPTHS, DEC_DEPTH, pretrain)
    assert model.absolute_pos_embed.shape == (1, (IMG // 4)**2, EMBED)
    return model.eval()


def _save_official(model, path, args=True):
    ckpt = dict(
        model=model.state_dict(), optimizer={}, epoch=599, scaler={})
    if args:
        ckpt['args'] = argparse.Namespace(model='mixmim_tiny', mask_ratio=.5)
    torch.save(ckpt, path)
    return path


def _tiny_mixmae():
    return MODELS.build(
        dict(
            type='MixMAE',
            backbone=dict(
                type='MixMAESwin',
                arch=dict(embed_dims=EMBED, depths=DEPTHS, num_heads=HEADS),
                window_size=WINDOWS),
            neck=dict(
                type='MixMAEPretrainDecoder',
                embed_dims=DEC_DIM,
                depth=DEC_DEPTH,
                num_heads=DEC_HEADS),
            head=dict(type='MixMAEPretrainHead', norm_pix=True))).eval()


def _tiny_classifier(num_classes=10, in_channels=EMBED * 8, **backbone):
    backbone = dict(
        type='MixMAESwin',
        arch=dict(embed_dims=EMBED, depths=DEPTHS, num_heads=HEADS),
        window_size=WINDOWS,
        **backbone)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=num_classes,
                in_channels=in_channels))).eval()


def _masks(b=4):
    mask = sample_mix_mask(b, (IMG // 32, IMG // 32), 0.5)  # (1, 2, 2)
    official = [
        upsample_mask(mask, s).float().reshape(1, -1, 1)
        for s in (8, 4, 2, 1)
    ]
    return mask, official


# ---------------------------------------------------------------------------
# official -> mixmae_mm
# ---------------------------------------------------------------------------
def test_official_pretrain_converts_and_matches_outputs(tmp_path, capsys):
    ref = _official(pretrain=True)
    src = _save_official(ref, tmp_path / 'official.pth')
    dst = tmp_path / 'out' / 'mixmae.pth'
    tool = _tool('mixmim_official_to_mixmae')
    assert tool.main([str(src), str(dst), '--trusted']) == 0
    out = capsys.readouterr().out
    num_params = len(dict(ref.named_parameters())) - 2  # minus pos tables
    assert f'converted: {num_params}' in out
    # 4 relative_position_index, 2 pos tables, 4 training fields
    assert 'dropped: 10' in out and 'unexpected: 0' in out
    assert 'layers.0.blocks.0.attn.relative_position_index' in out
    assert 'norm.weight -> backbone.norm3.weight' in out

    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['kind'] == 'pretrain'
    assert ckpt['meta']['arch']['backbone'] == dict(
        arch=dict(embed_dims=EMBED, depths=DEPTHS, num_heads=HEADS),
        window_size=WINDOWS)
    assert ckpt['meta']['arch']['neck']['embed_dims'] == DEC_DIM
    model = _tiny_mixmae()
    model.load_state_dict(ckpt['state_dict'], strict=True)

    imgs = torch.randn(4, 3, IMG, IMG)
    mask, official_masks = _masks()
    with torch.no_grad():
        rec_t, loss_t = ref.reconstruct_and_loss(imgs, official_masks)
        inputs = [imgs, mix_images(imgs, mask), mask]
        rec_o = model.reconstruct(inputs)
        loss_o = model.loss(inputs, None)['loss']
    assert rec_o.shape == (4, 4, 32 * 32 * 3)
    torch.testing.assert_close(rec_o, rec_t, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss_o, loss_t, rtol=1e-5, atol=1e-6)


def test_official_finetuned_converts_to_classifier(tmp_path):
    ref = _official(pretrain=False)
    src = _save_official(ref, tmp_path / 'official_ft.pth')
    dst = tmp_path / 'cls.pth'
    assert _tool('mixmim_official_to_mixmae').main(
        [str(src), str(dst), '--trusted', '--quiet']) == 0
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['kind'] == 'classifier'
    assert 'head.fc.weight' in ckpt['state_dict']
    model = _tiny_classifier()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    imgs = torch.randn(3, 3, IMG, IMG)
    with torch.no_grad():
        logits_o = model(imgs, mode='tensor')
        logits_t = ref.classify(imgs)
    torch.testing.assert_close(logits_o, logits_t, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('pretrain', [True, False])
def test_official_base_layout_matches_base_configs(pretrain):
    """An official Swin-B/W14 checkpoint maps key for key, shape for shape
    onto the base pretraining / fine-tuning configs (the official model on
    the meta device: shapes only)."""
    from mmengine.config import Config
    with torch.device('meta'):
        ref = OfficialMixMIM(
            embed=128,
            depths=[2, 2, 18, 2],
            heads=[4, 8, 16, 32],
            windows=[14, 14, 14, 7],
            img=224,
            pretrain=pretrain,
            num_classes=1000,
            dec_dim=512,
            dec_depth=8,
            dec_heads=16)
    sd, report = convert_official_mixmim(
        ref.state_dict(), check_derived=False)
    cfg = Config.fromfile(
        ROOT / 'configs/_base_/models/mixmae_swin-base.py' if pretrain else
        ROOT / 'configs/mixmae/benchmarks/mmpretrain/'
        'swin-base-w14_mixmae-pre_8xb128-amp-coslr-100e_in1k.py').model
    cfg.get('backbone', {}).pop('init_cfg', None)
    ours = MODELS.build(cfg).state_dict()
    assert len(report['dropped']) == 24 + 1 + pretrain
    assert set(sd) == set(ours)
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        k: tuple(v.shape) for k, v in ours.items()}
    assert infer_arch(sd)['backbone']['window_size'] == [14, 14, 14, 7]


def test_official_refuses_namespace_without_trusted(tmp_path, capsys):
    src = _save_official(_official(), tmp_path / 'official.pth')
    tool = _tool('mixmim_official_to_mixmae')
    assert tool.main([str(src), str(tmp_path / 'x.pth')]) == 1
    err = capsys.readouterr().err
    assert 'argparse.Namespace' in err and '--trusted' in err
    assert not (tmp_path / 'x.pth').exists()


def test_official_unknown_key_fails_with_nonzero_exit(tmp_path):
    ref = _official()
    sd = ref.state_dict()
    sd['layers.0.blocks.0.attn.qkv.lora_A'] = torch.zeros(2, 2)
    sd['pixel_mean'] = torch.zeros(3)
    src = tmp_path / 'bad.pth'
    torch.save(dict(model=sd, epoch=1), src)  # no Namespace: no --trusted
    dst = tmp_path / 'bad_out.pth'
    res = subprocess.run([
        sys.executable,
        str(CONVERTERS / 'mixmim_official_to_mixmae.py'),
        str(src), str(dst)
    ],
                         cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    assert 'unexpected: 2' in res.stdout
    assert 'layers.0.blocks.0.attn.qkv.lora_A' in res.stderr
    assert 'pixel_mean' in res.stderr
    assert not dst.exists()


def test_official_unknown_field_and_learned_pos_embed_are_refused():
    ref = _official()
    with pytest.raises(UnknownKeysError, match='model_ema'):
        checkpoint_io.convert_official_checkpoint(
            dict(model=ref.state_dict(), model_ema={}, epoch=1))
    sd = ref.state_dict()
    sd['absolute_pos_embed'] = sd['absolute_pos_embed'] + 0.1  # learned
    with pytest.raises(ConversionError, match='absolute_pos_embed'):
        convert_official_mixmim(sd)
    # a DDP `module.` prefix is understood
    sd = {f'module.{k}': v for k, v in ref.state_dict().items()}
    out, report = convert_official_mixmim(sd)
    assert 'backbone.norm3.weight' in out and report['kind'] == 'pretrain'


# ---------------------------------------------------------------------------
# mmpretrain -> mixmae_mm
# ---------------------------------------------------------------------------
MMP_ARCH = dict(embed_dims=32, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
MMP_WINDOWS = [8, 4, 4, 2]


def _mmpretrain_classifier():
    """mmpretrain ImageClassifier with MixMIMTransformer (random weights,
    the sin-cos table an official-converted checkpoint carries)."""
    from mixmae_mm.models.layers.pos_embed import sincos_pos_embed_2d
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='MixMIMTransformer',
                arch=MMP_ARCH,
                img_size=128,
                window_size=MMP_WINDOWS),
            head=dict(type='LinearClsHead', num_classes=5,
                      in_channels=256)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.2 if p.dim() == 1 else 0.1)
        model.backbone.absolute_pos_embed.copy_(
            sincos_pos_embed_2d(32, (32, 32)))
    return model.eval()


def test_mmpretrain_classifier_converts_and_matches(tmp_path, capsys):
    theirs = _mmpretrain_classifier()
    src = tmp_path / 'mmp.pth'
    torch.save(
        dict(
            meta=dict(epoch=100),
            state_dict=theirs.state_dict(),
            optimizer={}), src)
    dst = tmp_path / 'ours.pth'
    assert _tool('mmpretrain_mixmim_to_mixmae').main([str(src),
                                                      str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'unexpected: 0' in out and '[field] optimizer' in out
    assert 'backbone.absolute_pos_embed' in out  # dropped, listed
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['kind'] == 'classifier'
    ours = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='MixMAESwin', arch=MMP_ARCH, window_size=MMP_WINDOWS),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5,
                      in_channels=256))).eval()
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    imgs = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(imgs, mode='tensor'),
            theirs(imgs, mode='tensor'),
            rtol=1e-4,
            atol=1e-4)


def test_mmpretrain_converter_refuses_unknown_and_zero_pos_embed(
        tmp_path, capsys):
    theirs = _mmpretrain_classifier()
    sd = theirs.state_dict()
    sd['backbone.layers.0.blocks.0.gamma1'] = torch.ones(32)
    torch.save(dict(state_dict=sd), tmp_path / 'bad.pth')
    tool = _tool('mmpretrain_mixmim_to_mixmae')
    assert tool.main([str(tmp_path / 'bad.pth'),
                      str(tmp_path / 'o.pth')]) == 1
    captured = capsys.readouterr()
    assert 'unexpected: 1' in captured.out
    assert 'backbone.layers.0.blocks.0.gamma1' in captured.err
    # a from-scratch MixMIMTransformer keeps a zero absolute_pos_embed:
    # dropping it would change the model, so the converter refuses
    sd = theirs.state_dict()
    sd['backbone.absolute_pos_embed'].zero_()
    torch.save(dict(state_dict=sd), tmp_path / 'zero.pth')
    assert tool.main([str(tmp_path / 'zero.pth'),
                      str(tmp_path / 'o.pth')]) == 1
    assert 'sin-cos' in capsys.readouterr().err
    assert not (tmp_path / 'o.pth').exists()


# ---------------------------------------------------------------------------
# publish
# ---------------------------------------------------------------------------
def _runner_checkpoint(model):
    """What mmengine's Runner saves, numpy objects and HistoryBuffer
    included."""
    hub = HistoryBuffer()
    hub.update(0.5)
    return dict(
        meta=dict(
            epoch=1,
            iter=np.int64(8),
            seed=0,
            cfg='model = dict()',
            lr=np.float32(0.25),
            dataset_meta={},
            rng_states=dict(numpy=np.random.get_state())),
        state_dict=model.state_dict(),
        message_hub=dict(log_scalars={'train/loss': hub}),
        optimizer=dict(state={}, param_groups=[]),
        param_schedulers=[dict(last_epoch=np.int64(8))])


def test_publish_backbone_only_and_sha_suffix(tmp_path, capsys):
    model = _tiny_mixmae()
    src = tmp_path / 'epoch_1.pth'
    torch.save(_runner_checkpoint(model), src)
    with pytest.raises(Exception):  # what the publish step fixes
        torch.load(src, map_location='cpu', weights_only=True)
    tool = _tool('publish_model')
    assert tool.main([str(src), str(tmp_path / 'pub' / 'tiny.pth'),
                      '--backbone-only']) == 0
    out = capsys.readouterr().out
    assert '[field] optimizer' in out and '[meta] rng_states' in out
    files = list((tmp_path / 'pub').iterdir())
    assert len(files) == 1
    m = re.fullmatch(r'tiny-([0-9a-f]{8})\.pth', files[0].name)
    assert m, files[0].name
    assert hashlib.sha256(
        files[0].read_bytes()).hexdigest()[:8] == m.group(1)
    ckpt = torch.load(files[0], map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta']['iter'] == 8 and type(ckpt['meta']['iter']) is int
    assert 'rng_states' not in ckpt['meta']
    backbone = {
        k for k in model.state_dict() if k.startswith('backbone.')
    }
    assert set(ckpt['state_dict']) == backbone
    # loads strictly as a pretrained backbone (prefix kept)
    dense = MODELS.build(
        dict(
            type='MixMAESwin',
            arch=dict(embed_dims=EMBED, depths=DEPTHS, num_heads=HEADS),
            window_size=WINDOWS,
            init_cfg=dict(
                type='Pretrained',
                checkpoint=str(files[0]),
                prefix='backbone.')))
    dense.init_weights()
    torch.testing.assert_close(dense.layers[1].blocks[0].attn.qkv.weight,
                               model.backbone.layers[1].blocks[0].attn.qkv
                               .weight)


def test_publish_whole_model_and_unknown_fields(tmp_path, capsys):
    model = _tiny_mixmae()
    ckpt = _runner_checkpoint(model)
    out, report = checkpoint_io.publish_checkpoint(ckpt)
    assert set(out['state_dict']) == set(model.state_dict())
    assert report['unexpected'] == []
    ckpt['ema_state_dict'] = model.state_dict()
    ckpt['my_hook_state'] = {'x': 1}
    src = tmp_path / 'c.pth'
    torch.save(ckpt, src)
    tool = _tool('publish_model')
    assert tool.main([str(src), str(tmp_path / 'p.pth')]) == 1
    assert 'my_hook_state' in capsys.readouterr().err
    assert not list(tmp_path.glob('p-*.pth'))
    assert tool.main([
        str(src), str(tmp_path / 'p.pth'), '--strip-field', 'my_hook_state',
        '--quiet'
    ]) == 0
    published = list(tmp_path.glob('p-*.pth'))
    assert len(published) == 1
    loaded = torch.load(published[0], map_location='cpu', weights_only=True)
    assert set(loaded['state_dict']) == set(model.state_dict())


def test_publish_drops_derived_tensors_keeps_pretraining_weights():
    """The publish step filters through the encoder's checkpoint filter:
    derived tensors go (every load recomputes them), a SimMIM-style
    ``mask_token`` stays (learned; the fine-tuning load drops it)."""
    model = _tiny_mixmae()
    sd = model.state_dict()
    index = 'backbone.layers.0.blocks.0.attn.relative_position_index'
    sd[index] = torch.zeros(16, 16, dtype=torch.long)
    sd['backbone.mask_token'] = torch.zeros(1, 1, 1, EMBED)
    out, report = checkpoint_io.publish_checkpoint(
        dict(state_dict=sd), backbone_only=True)
    assert index in report['dropped'] and index not in out['state_dict']
    assert 'backbone.mask_token' in out['state_dict']
    assert report['converted'] == list(out['state_dict'])
    assert set(out['state_dict']) == {
        k for k in sd if k.startswith('backbone.') and k != index
    }
