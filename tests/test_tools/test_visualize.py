"""tools/visualize_reconstruction.py end to end."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_data import make_imagenet_folder
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from PIL import Image

from mixmae_mm.visualization.reconstruction import HEADER, PAD

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs/mixmae/mixmae_swin-tiny-w8_1xb16-coslr-30e_demo.py'


def _tool():
    path = ROOT / 'tools' / 'visualize_reconstruction.py'
    spec = importlib.util.spec_from_file_location('visualize_reconstruction',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Two demo images of 160 px (resized and cropped to 128 by the tool)."""
    root = tmp_path_factory.mktemp('imgs')
    make_imagenet_folder(str(root), num_train=1, num_val=0, size=160)
    files = sorted((root / 'train').rglob('*.JPEG'))
    return str(files[0]), str(files[-1])


@pytest.fixture(scope='module')
def fresh_ckpt(tmp_path_factory):
    """A freshly initialised tiny demo model, saved as tensors only."""
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(DEMO).model)
    model.init_weights()
    path = tmp_path_factory.mktemp('ckpt') / 'fresh.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def test_pretrain_size_follows_the_train_pipeline():
    tool = _tool()
    assert tool.pretrain_size(Config.fromfile(DEMO)) == 128
    base = ROOT / 'configs/mixmae/' \
        'mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py'
    assert tool.pretrain_size(Config.fromfile(base)) == 224


def test_cli_writes_png(tmp_path, images, fresh_ckpt, capsys):
    out = tmp_path / 'grid' / 'rec.png'
    _tool().main([
        str(DEMO),
        str(fresh_ckpt), *images, '--out',
        str(out), '--seed', '1'
    ])
    assert 'reconstruction grid' in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    side = 128  # the demo's crop, no enlargement needed
    assert grid.shape == (HEADER + PAD + side + PAD, PAD + 6 * (side + PAD),
                          3)
    # column A shows image A, resized (short side) and centre-cropped
    a = np.asarray(Image.open(images[0]).convert('RGB').resize(
        (side, side), Image.BICUBIC))
    cell = grid[HEADER + PAD:HEADER + PAD + side, PAD:PAD + side]
    assert np.abs(cell.astype(int) - a.astype(int)).mean() < 2
    # another seed draws another mask
    out2 = tmp_path / 'rec2.png'
    _tool().main([
        str(DEMO),
        str(fresh_ckpt), *images, '--out',
        str(out2), '--seed', '2'
    ])
    mask_col = slice(PAD + 3 * (side + PAD), PAD + 3 * (side + PAD) + side)
    rows = slice(HEADER + PAD, HEADER + PAD + side)
    assert not np.array_equal(grid[rows, mask_col],
                              np.asarray(Image.open(out2))[rows, mask_col])


def test_cli_rejects_sizes_off_the_mixing_grid(tmp_path, images, fresh_ckpt):
    with pytest.raises(SystemExit, match='multiple of 32'):
        _tool().main([
            str(DEMO),
            str(fresh_ckpt), *images, '--out',
            str(tmp_path / 'x.png'), '--size', '100'
        ])
