"""Smoke run of tools/experiments/toy_reproduction.py (a few iterations of
every pretraining and fine-tuning run, real Runners)."""
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = 'tools/experiments/toy_reproduction.py'
KEYS = ['random', 'simmim', 'mixmae']  # the default rows
ABLATIONS = ['no_masked_attn', 'single_recon', 'mask_stride4']


def _run(tmp_path, work, *extra):
    cmd = [
        sys.executable, SCRIPT, '--smoke', '--work-dir',
        str(tmp_path / work), '--data-root',
        str(tmp_path / 'data'), '--out',
        str(tmp_path / work / 'result'), *extra
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / work / 'result.json') as f:
        return json.load(f)


def test_smoke_run_writes_table_chart_and_readme(tmp_path):
    readme = tmp_path / 'README.md'
    # markers named after the --out base name ('result')
    readme.write_text('intro\n<!-- result:start -->\nold\n'
                      '<!-- result:end -->\nrest\n')
    result = _run(tmp_path, 'a', '--readme', str(readme))
    rows = result['rows']
    assert [r['key'] for r in rows] == KEYS
    for r in rows:
        assert all(0. <= v <= 100. for v in r['finetune_runs'] +
                   r['probe_runs'])
        assert (r['pretrain_loss'] is None) == (r['key'] == 'random')
    work = tmp_path / 'a'
    for key in KEYS[1:]:  # every pretraining run left its checkpoint
        assert (work / f'pretrain_{key}_seed0' / 'iter_2.pth').is_file()
    # fine-tuning started from those checkpoints (strict load, reported)
    log = (work / 'finetune_simmim_seed0' / 'console.log').read_text()
    assert "pretraining-only keys dropped: ['mask_token']" in log
    log = (work / 'finetune_mixmae_seed0' / 'console.log').read_text()
    assert 'pretrain_mixmae_seed0/iter_2.pth' in log
    log = (work / 'finetune_random_seed0' / 'console.log').read_text()
    assert 'Pretrained' not in log and 'iter_2.pth' not in log

    table = (work / 'result.md').read_text()
    assert table.count('\n| ') == 1 + len(KEYS)  # header and one row each
    assert Image.open(work / 'result.png').size[0] > 300
    text = readme.read_text()
    assert 'old' not in text and '| MixMAE (stride-32 mask, masked ' \
        'attention, dual) |' in text
    assert text.startswith('intro\n') and text.endswith('rest\n')

    # a run is reused only with the same settings; the ablations run on
    # request
    def stamp(run):
        return (work / run / 'result.json').stat().st_mtime_ns

    before = stamp('finetune_random_seed0'), stamp('pretrain_mixmae_seed0')
    abl = _run(tmp_path, 'a', '--encoders', 'random', 'mixmae', *ABLATIONS,
               '--finetune-iters', '1')
    assert [r['key'] for r in abl['rows']] == ['random', 'mixmae',
                                               *ABLATIONS]
    assert stamp('finetune_random_seed0') != before[0]  # redone
    assert stamp('pretrain_mixmae_seed0') == before[1]  # reused
    with open(work / 'finetune_random_seed0' / 'result.json') as f:
        assert json.load(f)['run']['iters'] == 1
    for key in ABLATIONS:
        assert (work / f'pretrain_{key}_seed0' / 'iter_2.pth').is_file()

    # the same seed gives the same numbers (both pretraining algorithms
    # redone elsewhere)
    again = _run(tmp_path, 'b', '--force', '--encoders', 'simmim', 'mixmae')
    assert [r['key'] for r in again['rows']] == ['simmim', 'mixmae']
    for r, s in zip(rows[1:3], again['rows']):
        assert r['finetune_runs'] == s['finetune_runs'], r['key']
        assert r['probe_runs'] == s['probe_runs'], r['key']
        assert r['pretrain_loss'] == s['pretrain_loss'], r['key']


def test_smoke_run_pvtv2_rows(tmp_path):
    """The PVTv2 rows (on request only): MixMAE pretraining of the tiny
    MixMAEPVTv2, fine-tuning from its checkpoint with the PVTv2 recipe, the
    probe, and the random-init row."""
    result = _run(tmp_path, 'p', '--encoders', 'pvtv2_mixmae',
                  'pvtv2_random')
    rows = result['rows']
    assert [r['key'] for r in rows] == ['pvtv2_random', 'pvtv2_mixmae']
    for r in rows:
        assert all(0. <= v <= 100. for v in r['finetune_runs'] +
                   r['probe_runs'])
        assert (r['pretrain_loss'] is None) == (r['key'] == 'pvtv2_random')
    work = tmp_path / 'p'
    ckpt = work / 'pretrain_pvtv2_mixmae_seed0' / 'iter_2.pth'
    assert ckpt.is_file()
    for key in ('pvtv2_random', 'pvtv2_mixmae'):
        with open(work / f'finetune_{key}_seed0' / 'result.json') as f:
            assert json.load(f)['run']['config'] == \
                'pvtv2-toy_1xb32-100i_toyshapes-96px.py'
    # a strict load of the pretrained encoder, reported by the backbone
    log = (work / 'finetune_pvtv2_mixmae_seed0' / 'console.log').read_text()
    assert f'MixMAEPVTv2: loaded 110 tensors from {ckpt}' in log
    log = (work / 'finetune_pvtv2_random_seed0' / 'console.log').read_text()
    assert "type='MixMAEPVTv2'" in log
    assert 'Pretrained' not in log and 'iter_2.pth' not in log
    table = (work / 'result.md').read_text()
    assert '| PVTv2: random init (no pretraining) |' in table
    assert '| PVTv2: MixMAE (stride-32 mask, masked attention, dual) |' \
        in table
