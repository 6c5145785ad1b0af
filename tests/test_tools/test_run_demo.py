"""README command 1's driver (tools/misc/run_demo.py): the random-init
baseline, the majority-class segmentation score and the README block."""
import argparse

import numpy as np
import pytest
from demo_data import make_ade20k
from mmengine.config import Config, DictAction
from PIL import Image

import run_demo


def _apply(config, options):
    """``options`` parsed and merged as tools/train.py does."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options',
                                           *options]).cfg_options)
    return cfg


def test_random_init_drops_only_the_checkpoint(tmp_path):
    """The random-init run is the pretrained run's config with the encoder's
    load removed: nothing else differs, and its encoder builds and
    initialises without touching the checkpoint."""
    from mmpretrain.registry import MODELS
    config = run_demo.TASKS['cls'][0]
    missing = str(tmp_path / 'missing.pth')
    pre = _apply(config, run_demo.init_options(missing, False))
    rnd = _apply(config, run_demo.init_options(missing, True))
    assert pre.model.backbone.init_cfg.checkpoint == missing
    assert rnd.model.backbone.init_cfg is None
    pre_dict, rnd_dict = pre.to_dict(), rnd.to_dict()
    pre_dict['model']['backbone'].pop('init_cfg')
    rnd_dict['model']['backbone'].pop('init_cfg')
    assert pre_dict == rnd_dict
    MODELS.build(rnd.model.backbone).init_weights()
    with pytest.raises(Exception, match='missing.pth'):
        MODELS.build(pre.model.backbone).init_weights()


def test_majority_class_scores(tmp_path):
    """The constant prediction's mIoU is (majority pixels / labelled
    pixels) / (classes present), aAcc that fraction: computed here from the
    PNGs with numpy, there by mmseg's IoUMetric."""
    root = tmp_path / 'ade'
    make_ade20k(str(root), num_train=1, num_val=3, size=(64, 80), seed=5)
    labels = np.concatenate([
        np.asarray(Image.open(p)).ravel()
        for p in sorted((root / 'annotations' / 'validation').glob('*.png'))
    ])
    labels = labels[labels > 0].astype(int) - 1  # reduce_zero_label
    counts = np.bincount(labels)
    frac = counts.max() / counts.sum()
    res = run_demo.majority_class_scores(str(root))
    assert res['aAcc'] == pytest.approx(100 * frac, abs=0.01)
    assert res['mIoU'] == pytest.approx(
        100 * frac / (counts > 0).sum(), abs=0.01)
    from mmseg.datasets import ADE20KDataset
    assert res['label'] == ADE20KDataset.METAINFO['classes'][counts.argmax()]
    for sub in ('images', 'annotations'):
        (tmp_path / 'empty' / sub / 'validation').mkdir(parents=True)
    with pytest.raises(ValueError, match='no validation label maps'):
        run_demo.majority_class_scores(str(tmp_path / 'empty'))


def test_summary_names_reused_steps_and_load():
    timer = run_demo.Timer()
    timer.step('data', True, lambda: None)
    timer.step('pretraining', False, lambda: pytest.fail('ran a reused step'))
    rows = [('pretraining (MixMAE)', 'loss first -> last', '1.000 -> 0.500',
             '')]
    baseline = dict(label='floor', mIoU=2.256, aAcc=24.83)
    table = run_demo.summary_table(rows, timer, (0.5, 2.5), 61.0, 'cmd',
                                   baseline)
    lines = table.splitlines()
    assert lines[0].count('|') == lines[1].count('|') == lines[2].count('|')
    assert 'reused from an earlier run: pretraining' in table
    assert 'data 0 s' in table and '61 s in all' in table
    assert 'load average 0.5 before and 2.5 after' in table
    assert '("floor") everywhere scores mIoU 2.26 / aAcc 24.83' in table


def test_readme_block_replaced_between_markers_only(tmp_path):
    readme = tmp_path / 'README.md'
    head, tail = '# T\n\nintro\n', '\nlater section\n'
    block = ('<!-- demo-summary:start -->\nold\n'
             '<!-- demo-summary:end -->')
    readme.write_text(head + block + tail)
    for table in ('| a |\n', '| b |\n'):  # a second run replaces the first
        run_demo.update_readme(str(readme), table)
    assert readme.read_text() == (
        head + '<!-- demo-summary:start -->\n| b |\n'
        '<!-- demo-summary:end -->' + tail)
    readme.write_text(head + tail)
    with pytest.raises(SystemExit, match='demo-summary:start'):
        run_demo.update_readme(str(readme), '| c |\n')
    assert readme.read_text() == head + tail
