"""LoadColorImageFromFile: grayscale, RGBA, 16-bit and corrupt images are
converted or refused explicitly; ordinary images load as upstream."""
import cv2
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from PIL import Image

import mixmae_mm  # noqa: F401
from mixmae_mm.datasets import (CorruptImageError, LoadColorImageFromFile,
                                UnsupportedImageError)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)


def load(path, **kwargs):
    return LoadColorImageFromFile(**kwargs)(dict(img_path=str(path)))


def upstream(path):
    return LoadImageFromFile()(dict(img_path=str(path)))['img']


def check_color8(img, shape=(40, 48)):
    assert img.dtype == np.uint8 and img.shape == (*shape, 3)


def test_ordinary_rgb_jpeg_is_bit_identical_to_upstream(tmp_path):
    path = tmp_path / 'a.JPEG'
    Image.fromarray(RGB).save(path, quality=90)
    res = load(path)
    check_color8(res['img'])
    assert np.array_equal(res['img'], upstream(path))
    assert res['img_shape'] == res['ori_shape'] == (40, 48)


@pytest.mark.parametrize('ext', ['JPEG', 'png'])
def test_grayscale_is_replicated_to_three_channels(tmp_path, ext):
    path = tmp_path / f'g.{ext}'
    Image.fromarray(RGB[..., 0]).save(path)
    img = load(path)['img']
    check_color8(img)
    assert np.array_equal(img[..., 0], img[..., 1])
    assert np.array_equal(img[..., 1], img[..., 2])
    assert np.array_equal(img, upstream(path))  # same as upstream
    with pytest.raises(UnsupportedImageError) as info:
        load(path, gray='error')
    assert 'grayscale' in str(info.value) and str(path) in str(info.value)


def _rgba(tmp_path):
    alpha = np.zeros((40, 48), np.uint8)
    alpha[:, 24:] = 255  # left half transparent, right half opaque
    alpha[0, 0] = 128
    path = tmp_path / 'rgba.png'
    Image.fromarray(np.dstack([RGB, alpha]), 'RGBA').save(path)
    return path


def test_rgba_is_composited_over_white_by_default(tmp_path):
    img = load(_rgba(tmp_path))['img']  # BGR
    check_color8(img)
    bgr = RGB[..., ::-1]
    assert (img[1:, :24] == 255).all()  # transparent -> background
    assert np.array_equal(img[:, 24:], bgr[:, 24:])  # opaque unchanged
    expect = np.round(bgr[0, 0].astype(float) * 128 / 255 +
                      255 * (1 - 128 / 255))
    assert np.array_equal(img[0, 0], expect.astype(np.uint8))


def test_rgba_drop_and_error_and_custom_background(tmp_path):
    path = _rgba(tmp_path)
    assert np.array_equal(load(path, alpha='drop')['img'], RGB[..., ::-1])
    img = load(path, background=(0, 0, 255))['img']
    assert (img[1:, :24] == [255, 0, 0]).all()  # blue in BGR
    with pytest.raises(UnsupportedImageError) as info:
        load(path, alpha='error')
    assert 'alpha channel' in str(info.value) and 'rgba.png' in str(
        info.value)


def test_gray_alpha_png(tmp_path):
    path = tmp_path / 'la.png'
    la = np.dstack([RGB[..., 0], np.full((40, 48), 255, np.uint8)])
    Image.fromarray(la, 'LA').save(path)
    img = load(path)['img']
    check_color8(img)
    assert np.array_equal(img[..., 2], RGB[..., 0])


def test_16bit_images_are_scaled_to_8bit(tmp_path):
    g16 = RNG.integers(0, 65536, (40, 48)).astype(np.uint16)
    g16[0, :3] = [0, 65535, 257 * 100]
    gpath = tmp_path / 'g16.png'
    cv2.imwrite(str(gpath), g16)
    img = load(gpath)['img']
    check_color8(img)
    assert list(img[0, :3, 0]) == [0, 255, 100]
    assert np.array_equal(img[..., 0], np.round(g16 / 257).astype(np.uint8))
    c16 = RNG.integers(0, 65536, (40, 48, 3)).astype(np.uint16)
    cpath = tmp_path / 'c16.png'
    cv2.imwrite(str(cpath), c16)  # BGR
    img = load(cpath)['img']
    check_color8(img)
    assert np.array_equal(img, np.round(c16 / 257).astype(np.uint8))
    for path in (gpath, cpath):
        with pytest.raises(UnsupportedImageError, match='16-bit'):
            load(path, high_bit_depth='error')


def test_float_images_are_refused(tmp_path):
    path = tmp_path / 'f.tiff'
    Image.fromarray(RNG.random((40, 48)).astype(np.float32), 'F').save(path)
    with pytest.raises(UnsupportedImageError, match='floating point'):
        load(path)


def test_corrupt_files_raise_naming_the_file(tmp_path):
    garbage = tmp_path / 'garbage.JPEG'
    garbage.write_bytes(b'this is not an image' * 10)
    empty = tmp_path / 'empty.JPEG'
    empty.write_bytes(b'')
    for path, reason in ((garbage, 'cannot decode'), (empty, 'empty')):
        with pytest.raises(CorruptImageError) as info:
            load(path)
        assert str(path) in str(info.value) and reason in str(info.value)
    # upstream: an AssertionError / AttributeError, or nothing at all
    with pytest.raises(Exception):
        upstream(garbage)


def test_truncated_jpeg_is_detected(tmp_path):
    path = tmp_path / 'trunc.JPEG'
    Image.fromarray(RGB).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    # upstream silently returns a partly grey image
    assert upstream(path).shape == (40, 48, 3)
    with pytest.raises(CorruptImageError, match='truncated') as info:
        load(path)
    assert str(path) in str(info.value)
    # trailing bytes after a complete JPEG are fine
    path.write_bytes(data + b'\x00' * 16)
    check_color8(load(path)['img'])


def test_corrupt_file_can_be_skipped(tmp_path):
    path = tmp_path / 'garbage.JPEG'
    path.write_bytes(b'\xff\xd8 broken')
    assert load(path, on_corrupt='skip') is None


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.JPEG'):
        load(tmp_path / 'nope.JPEG')


def test_bad_policy_values_are_rejected():
    with pytest.raises(ValueError, match='alpha must be one of'):
        LoadColorImageFromFile(alpha='keep')
    with pytest.raises(ValueError, match='background'):
        LoadColorImageFromFile(background=(1, 2))
