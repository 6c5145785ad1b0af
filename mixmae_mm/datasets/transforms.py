# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Load any image as 8-bit, 3-channel colour, with explicit policies."""
import io
import logging
import os.path as osp
from typing import Optional, Sequence

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS
from PIL import Image, UnidentifiedImageError

#: PIL modes of images with an alpha channel.
_ALPHA_MODES = ('RGBA', 'LA', 'PA', 'RGBa', 'La')
#: PIL modes of single-channel images.
_GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N')
#: JPEG markers: start of scan, end of image.
_JPEG_SOS, _JPEG_EOI = b'\xff\xda', b'\xff\xd9'


class CorruptImageError(OSError):
    """An image file that cannot be decoded completely."""


class UnsupportedImageError(ValueError):
    """An image the configured policy refuses (e.g. RGBA with
    ``alpha='error'``)."""


@TRANSFORMS.register_module()
class LoadColorImageFromFile(LoadImageFromFile):
    """Load an image as an 8-bit, 3-channel BGR array (as
    ``LoadImageFromFile`` with ``color_type='color'`` returns), converting
    or refusing unusual images explicitly instead of silently.

    mmpretrain's ``LoadImageFromFile`` decodes with
    ``cv2.IMREAD_COLOR``, which silently replicates grayscale, drops alpha
    and truncates 16-bit images to their high byte, and fails on a corrupt
    file with ``AssertionError`` / ``AttributeError`` or, for a truncated
    JPEG, returns a partly grey image without any error. This transform
    reads the header first (PIL, no pixel decoding) and applies:

    * ``gray``: single-channel images. ``'convert'`` (default; ImageNet has
      grayscale JPEGs): replicated to 3 channels, exactly as
      ``LoadImageFromFile`` does; ``'error'``: refuse.
    * ``alpha``: RGBA / LA / palette-with-transparency. ``'composite'``
      (default): blended over ``background`` (white), i.e. what a viewer
      shows; ``'drop'``: alpha ignored (what ``PIL.Image.convert('RGB')`` of
      the official code does); ``'error'``: refuse.
    * ``high_bit_depth``: 16-bit images. ``'convert'`` (default): scaled
      linearly to 8 bit, ``round(v / 257)`` (0 -> 0, 65535 -> 255);
      ``'error'``: refuse. Floating-point / 32-bit images are always
      refused (no known range).
    * corrupt files (not decodable, empty, truncated JPEG without an
      end-of-image marker after its last scan): ``on_corrupt='error'``
      (default) raises :class:`CorruptImageError` naming the file;
      ``'skip'`` logs a warning naming it and returns ``None``, so that
      mmengine's dataset picks another sample.

    Ordinary 8-bit RGB / grayscale / CMYK / palette images are decoded with
    ``mmcv.imfrombytes(flag='color', backend=imdecode_backend)``, i.e.
    bit-identical to ``LoadImageFromFile``. The first conversion of each
    kind is logged (with the file name).

    Args:
        gray (str): ``'convert'`` or ``'error'``. Defaults to ``'convert'``.
        alpha (str): ``'composite'``, ``'drop'`` or ``'error'``. Defaults
            to ``'composite'``.
        high_bit_depth (str): ``'convert'`` or ``'error'``. Defaults to
            ``'convert'``.
        background (Sequence[int]): RGB colour for ``alpha='composite'``.
            Defaults to (255, 255, 255).
        on_corrupt (str): ``'error'`` or ``'skip'``. Defaults to
            ``'error'``.
        to_float32 (bool): Return float32 instead of uint8. Defaults to
            False.
        imdecode_backend (str): mmcv decoding backend for ordinary images.
            Defaults to ``'cv2'``.
        backend_args (dict, optional): File backend arguments.
    """

    _logged_kinds: set = set()

    def __init__(self,
                 gray: str = 'convert',
                 alpha: str = 'composite',
                 high_bit_depth: str = 'convert',
                 background: Sequence[int] = (255, 255, 255),
                 on_corrupt: str = 'error',
                 to_float32: bool = False,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            to_float32=to_float32,
            color_type='color',
            imdecode_backend=imdecode_backend,
            ignore_empty=False,
            backend_args=backend_args)
        for name, value, allowed in (
            ('gray', gray, ('convert', 'error')),
            ('alpha', alpha, ('composite', 'drop', 'error')),
            ('high_bit_depth', high_bit_depth, ('convert', 'error')),
            ('on_corrupt', on_corrupt, ('error', 'skip')),
        ):
            if value not in allowed:
                raise ValueError(f'LoadColorImageFromFile: {name} must be one '
                                 f'of {allowed}, got {value!r}')
        if len(background) != 3:
            raise ValueError(f'background must be an RGB triple, got '
                             f'{background!r}')
        self.gray = gray
        self.alpha = alpha
        self.high_bit_depth = high_bit_depth
        self.background = tuple(int(c) for c in background)
        self.on_corrupt = on_corrupt

    # ----------------------------------------------------------------- io
    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``.

        Args:
            results (dict): With ``img_path``.

        Returns:
            dict | None: ``results`` with ``img`` (H, W, 3) BGR uint8 (or
            float32), ``img_shape`` and ``ori_shape``; ``None`` for a
            corrupt file with ``on_corrupt='skip'``.
        """
        filename = results['img_path']
        img_bytes = fileio.get(filename, backend_args=self.backend_args)
        try:
            img = self.decode(img_bytes, filename)
        except CorruptImageError as e:
            if self.on_corrupt == 'skip':
                print_log(
                    f'{e} (skipped, on_corrupt=skip)',
                    logger='current',
                    level=logging.WARNING)
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def decode(self, img_bytes: bytes, filename: str = '<bytes>') \
            -> np.ndarray:
        """Decode bytes to an 8-bit BGR array under the policies.

        Args:
            img_bytes (bytes): Encoded image.
            filename (str): For messages.

        Returns:
            np.ndarray: (H, W, 3) uint8, BGR.
        """
        if not img_bytes:
            raise self._corrupt(filename, 'the file is empty')
        header_error = None
        try:
            header = Image.open(io.BytesIO(img_bytes))
            mode, fmt = header.mode, header.format
            raw = str(header.tile[0][3]) if header.tile else ''
            transparency = 'transparency' in header.info
        except (UnidentifiedImageError, OSError, ValueError,
                SyntaxError) as e:
            mode, fmt, raw, transparency = None, None, '', False
            header_error = e
        if fmt == 'JPEG':
            self._check_jpeg_complete(img_bytes, filename)

        if mode == 'F' or (mode is not None and mode.startswith('I')
                           and mode not in _GRAY_MODES):
            raise UnsupportedImageError(
                f'{filename}: {mode} images (floating point / 32-bit) are '
                'not supported: their value range is unknown; convert the '
                'file to 8-bit (or 16-bit) RGB')
        is_gray = mode in _GRAY_MODES
        has_alpha = mode in _ALPHA_MODES or (mode in ('P', 'L', 'RGB')
                                             and transparency)
        is_16bit = (mode is not None and mode.startswith('I')) or ';16' in raw

        if is_gray and self.gray == 'error':
            raise UnsupportedImageError(
                f'{filename} is a grayscale ({mode}) image and gray=\'error\''
                '; expected 3-channel colour images. Set gray=\'convert\' '
                'to replicate the channel, or convert the file to RGB')
        if has_alpha and self.alpha == 'error':
            raise UnsupportedImageError(
                f'{filename} has an alpha channel ({mode}) and '
                "alpha='error'; expected RGB images. Set alpha='composite' "
                "(blend over a background) or alpha='drop', or convert the "
                'file to RGB')
        if is_16bit and self.high_bit_depth == 'error':
            raise UnsupportedImageError(
                f'{filename} is a 16-bit image and high_bit_depth=\'error\'; '
                "expected 8-bit images. Set high_bit_depth='convert' "
                '(scale v / 257) or convert the file to 8 bit')

        if not (has_alpha or is_16bit):
            img = self._imfrombytes(img_bytes, 'color', filename)
            if img is None:
                reason = 'cannot decode it as an image' + (
                    f' ({header_error})' if header_error else '')
                raise self._corrupt(filename, reason)
            if is_gray:
                self._log_once('gray', filename,
                               'replicated its single channel to BGR')
            return img

        img = self._imfrombytes(img_bytes, 'unchanged', filename)
        if img is None:
            raise self._corrupt(filename, 'cannot decode it as an image')
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.).round().astype(np.uint8)
            self._log_once('16bit', filename,
                           'scaled it from 16 to 8 bit (v / 257)')
        elif img.dtype != np.uint8:
            raise UnsupportedImageError(
                f'{filename}: {img.dtype} pixels are not supported; convert '
                'the file to 8-bit RGB')
        if img.ndim == 2:
            img = img[..., None]
        channels = img.shape[2]
        if channels in (2, 4):
            color, alpha = img[..., :-1], img[..., -1:]
            if channels == 2:
                color = np.repeat(color, 3, axis=2)
            if self.alpha == 'composite':
                a = alpha.astype(np.float32) / 255.
                bg = np.array(self.background[::-1], np.float32)  # BGR
                color = (color * a + bg * (1. - a)).round().astype(np.uint8)
            self._log_once(f'alpha-{self.alpha}', filename,
                           f'removed its alpha channel (alpha={self.alpha})')
            img = np.ascontiguousarray(color)
        elif channels == 1:
            img = np.repeat(img, 3, axis=2)
            self._log_once('gray', filename,
                           'replicated its single channel to BGR')
        elif channels != 3:
            raise UnsupportedImageError(
                f'{filename} has {channels} channels; expected 1, 3 or 4')
        return img

    # ------------------------------------------------------------ helpers
    def _imfrombytes(self, img_bytes: bytes, flag: str,
                     filename: str) -> Optional[np.ndarray]:
        backend = self.imdecode_backend if flag == 'color' else 'cv2'
        try:
            return mmcv.imfrombytes(img_bytes, flag=flag, backend=backend)
        except Exception as e:  # noqa: BLE001 (decoder errors vary)
            raise self._corrupt(filename, f'the decoder failed: {e}') from e

    @staticmethod
    def _check_jpeg_complete(img_bytes: bytes, filename: str) -> None:
        """A JPEG must have an end-of-image marker after its last scan (a
        truncated file decodes silently to a partly grey image)."""
        last_scan = img_bytes.rfind(_JPEG_SOS)
        if last_scan < 0 or img_bytes.find(_JPEG_EOI, last_scan) < 0:
            raise LoadColorImageFromFile._corrupt(
                filename, 'the JPEG data is truncated (no end-of-image '
                'marker after the last scan)')

    @staticmethod
    def _corrupt(filename: str, reason: str) -> CorruptImageError:
        return CorruptImageError(
            f'Corrupt or unreadable image {filename}: {reason}. Replace or '
            'remove the file (or set on_corrupt=\'skip\' in '
            'LoadColorImageFromFile to skip such files with a warning)')

    def _log_once(self, kind: str, filename: str, what: str) -> None:
        if kind in LoadColorImageFromFile._logged_kinds:
            return
        LoadColorImageFromFile._logged_kinds.add(kind)
        print_log(
            f'LoadColorImageFromFile: {osp.basename(filename)}: {what}; '
            'further images of this kind are converted the same way '
            'without a message',
            logger='current',
            level=logging.WARNING)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(gray={self.gray!r}, '
                f'alpha={self.alpha!r}, high_bit_depth='
                f'{self.high_bit_depth!r}, background={self.background}, '
                f'on_corrupt={self.on_corrupt!r}, to_float32='
                f'{self.to_float32}, imdecode_backend='
                f'{self.imdecode_backend!r})')
