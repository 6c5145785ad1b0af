"""CheckedCustomDataset / CheckedImageNet: a missing or empty dataset folder
is named with the expected layout; a pipeline over mixed image kinds
yields 8-bit colour images."""
import numpy as np
import pytest
from demo_data import make_imagenet_folder
from mmpretrain.registry import DATASETS
from PIL import Image

import mixmae_mm  # noqa: F401


def build(**kwargs):
    cfg = dict(type='CheckedCustomDataset', pipeline=[])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


@pytest.mark.parametrize('with_label', [True, False])
def test_missing_folder_names_it_and_the_layout(tmp_path, with_label):
    root = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as info:
        build(data_root=str(root), data_prefix='train',
              with_label=with_label)
    msg = str(info.value)
    assert str(root / 'train') in msg and 'does not exist' in msg
    assert '<class_name>' in msg and '.jpeg' in msg.lower()


@pytest.mark.parametrize('with_label', [True, False])
def test_empty_folder_names_it_and_the_layout(tmp_path, with_label):
    (tmp_path / 'train' / 'cls').mkdir(parents=True)
    (tmp_path / 'train' / 'cls' / 'notes.txt').write_text('not an image')
    with pytest.raises(ValueError) as info:
        build(data_root=str(tmp_path), data_prefix='train',
              with_label=with_label)
    msg = str(info.value)
    assert str(tmp_path / 'train') in msg and 'holds no images' in msg
    assert '<class_name>' in msg


def test_missing_annotation_file(tmp_path):
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileNotFoundError) as info:
        build(data_root=str(tmp_path), data_prefix='train',
              ann_file='meta/train.txt')
    msg = str(info.value)
    assert 'meta/train.txt' in msg and '<label>' in msg


def test_checked_imagenet_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(
            dict(type='CheckedImageNet', data_root=str(tmp_path / 'x'),
                 split='train', pipeline=[]))


def test_valid_folder_loads_like_custom_dataset(tmp_path):
    make_imagenet_folder(str(tmp_path), num_train=2, num_val=1, size=32)
    checked = build(data_root=str(tmp_path), data_prefix='train',
                    with_label=False)
    plain = DATASETS.build(
        dict(type='CustomDataset', data_root=str(tmp_path),
             data_prefix='train', with_label=False, pipeline=[]))
    assert len(checked) == len(plain) == 8
    assert checked.get_data_info(3) == plain.get_data_info(3)


def test_pipeline_over_mixed_image_kinds(tmp_path):
    """Grayscale, RGBA and 16-bit files in one folder all come out as
    (3, H, W) uint8 through the demo pipeline."""
    folder = tmp_path / 'train' / 'mixed'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / 'rgb.JPEG')
    Image.fromarray(rgb[..., 0]).save(folder / 'gray.JPEG')
    Image.fromarray(np.dstack([rgb, rgb[..., 0]]), 'RGBA').save(
        folder / 'rgba.png')
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(
        folder / 'g16.png')
    (folder / 'broken.JPEG').write_bytes(b'\xff\xd8 not really')
    pipeline = [
        dict(type='LoadColorImageFromFile', on_corrupt='skip'),
        dict(type='RandomResizedCrop', scale=32, backend='pillow'),
        dict(type='PackInputs')
    ]
    ds = build(data_root=str(tmp_path), data_prefix='train',
               with_label=False, pipeline=pipeline)
    assert len(ds) == 5
    names = set()
    for i in range(len(ds)):
        out = ds[i]  # the broken file is replaced by another sample
        assert out['inputs'].shape == (3, 32, 32)
        names.add(out['data_samples'].img_path.rsplit('/', 1)[-1])
    assert 'broken.JPEG' not in names
    # default policy: the error names the file
    strict = build(data_root=str(tmp_path), data_prefix='train',
                   with_label=False,
                   pipeline=[dict(type='LoadColorImageFromFile')])
    with pytest.raises(OSError, match='broken.JPEG'):
        strict[_index_of(strict, 'broken.JPEG')]


def _index_of(ds, name):
    for i in range(len(ds)):
        if ds.get_data_info(i)['img_path'].endswith(name):
            return i
    raise KeyError(name)
