"""tools/analysis_tools/masked_attention_study.py: the recomputed attention
is the encoder's, the cross-image share measures what it claims, and the
smoke run writes its tables."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = 'tools/analysis_tools/masked_attention_study.py'


@pytest.fixture(scope='module')
def study():
    spec = importlib.util.spec_from_file_location('masked_attention_study',
                                                  ROOT / SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def batch(study):
    """A tiny toy encoder and 4 images at 96 px mixed with one mask."""
    model = study.build(study.DESIGNS[0][3][1], None, seed=0)
    torch.manual_seed(0)
    imgs = torch.randn(4, 3, 96, 96)
    mask = study.eval_masks(1, 4, 3, seed=0)[0]  # (1, 3, 3)
    return model.backbone, study.mix_images(imgs, mask), mask


def test_recomputed_probabilities_give_the_block_output(study, batch):
    backbone, mixed, _ = batch
    attn = backbone.layers[0].blocks[0].attn
    seen = {}

    def pre(module, inputs):
        seen['in'] = inputs

    def post(module, inputs, output):
        seen['out'] = output.clone()  # the block adds its residual in place

    handles = [attn.register_forward_pre_hook(pre),
               attn.register_forward_hook(post)]
    with torch.no_grad():
        backbone(mixed)
    for h in handles:
        h.remove()
    x, layout = seen['in']
    with torch.no_grad():
        v = attn.qkv(x).chunk(3, dim=-1)[2]  # (B, L, C), heads contiguous
        outs = []
        for seg, probs in study.attention_probs(attn, x, layout):
            part = v[:, seg.start:seg.start + seg.num_cells * seg.size]
            part = part.reshape(len(x), seg.num_cells, seg.size,
                                attn.num_heads, -1).transpose(2, 3)
            out = (probs @ part).transpose(2, 3)  # (B, K, n, nH, Dh)
            outs.append(out.reshape(len(x), -1, attn.embed_dims))
        recomputed = attn.proj(torch.cat(outs, 1))
    torch.testing.assert_close(recomputed, seen['out'], rtol=1e-4,
                               atol=1e-5)


def test_share_is_zero_with_masked_attention(study, batch):
    backbone, mixed, mask = batch
    shares = study.cross_image_share(backbone, mixed, mask, masked=True)
    assert len(shares) == 4
    for s in shares:
        assert s['share'] == 0.
        assert s['uniform'] == 0.  # cells never hold two images


def test_share_of_uniform_attention_is_the_other_image_fraction(
        study, batch):
    backbone, mixed, mask = batch
    shares = study.cross_image_share(backbone, mixed, mask)
    for s in shares:
        assert 0. < s['share'] < 1. and 0. < s['uniform'] < 1.
    # stage 4 is one global 3 x 3 window: 5 own and 4 partner tokens (or the
    # reverse), so uniform attention puts (5*4 + 4*5) / 81 on the other one
    assert shares[3]['uniform'] == pytest.approx(40 / 81)
    # zero queries and bias: every query attends uniformly in its window
    attns = [b.attn for stage in backbone.layers for b in stage.blocks]
    saved = [(a.qkv.weight.clone(), a.qkv.bias.clone(),
              a.relative_position_bias_table.clone()) for a in attns]
    try:
        with torch.no_grad():
            for a in attns:
                c = a.embed_dims
                a.qkv.weight[:c] = 0
                a.qkv.bias[:c] = 0
                a.relative_position_bias_table.zero_()
        for s in study.cross_image_share(backbone, mixed, mask):
            assert s['share'] == pytest.approx(s['uniform'], abs=1e-6)
    finally:
        with torch.no_grad():
            for a, (w, b, t) in zip(attns, saved):
                a.qkv.weight.copy_(w)
                a.qkv.bias.copy_(b)
                a.relative_position_bias_table.copy_(t)


def test_smoke_run_writes_tables_and_readme(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('a\n<!-- masked-attention-study:start -->\nold\n'
                      '<!-- masked-attention-study:end -->\nb\n')
    cmd = [sys.executable, SCRIPT, '--smoke', '--designs', 'base', 'grid4',
           '--work-dir', str(tmp_path / 'w'), '--data-root',
           str(tmp_path / 'data'), '--readme', str(readme)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / 'w' / 'masked_attention_study.json') as f:
        out = json.load(f)
    assert [r['design'] for r in out['results']] == ['base', 'grid4']
    for r in out['results']:
        trained = r['trained'].values()
        assert [t['masked_attention_in_pretraining'] for t in trained] == \
            [True, False]
        for t in trained:
            assert t['loss_masked_on'] > 0 and t['loss_masked_off'] > 0
            assert 0 <= t['probe_top1'] <= 100
            assert len(t['share']) == 4
    # the base design shares the toy tool's runs (same keys and configs)
    assert (tmp_path / 'w' / 'pretrain_no_masked_attn_seed0' /
            'iter_2.pth').is_file()
    text = readme.read_text()
    assert 'old' not in text and '| trained, masked attention off |' in text
    assert text.startswith('a\n') and text.endswith('b\n')
