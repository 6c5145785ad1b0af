# Copyright (c) mixmae_mm contributors. Licensed under the Apache License 2.0.
"""Image-folder datasets that say what is wrong with a missing or empty
folder, and augment each sample from its own seed."""
import os.path as osp

from mmengine.fileio import LocalBackend, get_file_backend
from mmpretrain.datasets import CustomDataset, ImageNet
from mmpretrain.registry import DATASETS

from .seeded import SeededSamplesMixin


class FolderChecksMixin:
    """Checks run before an mmpretrain folder dataset scans its files.

    Upstream, a missing folder gives a bare ``[Errno 2] No such file or
    directory`` and an empty one ``Found 0 files in subfolders of: {...}``,
    neither stating the layout the dataset expects. These checks (local
    paths only) raise ``FileNotFoundError`` for a missing folder or
    annotation file and ``ValueError`` for a folder without images, each
    naming the path and the expected layout.
    """

    def _expected_layout(self) -> str:
        exts = ', '.join(self.extensions)
        prefix = self.img_prefix
        if self.ann_file:
            label = ' <label>' if self.with_label else ''
            return (f'an annotation file with one "<relative/path>{label}" '
                    f'line per image, paths relative to {prefix}')
        if self.with_label:
            return (f'one sub-folder per class holding the images: '
                    f'{osp.join(prefix, "<class_name>", "<image>")} with '
                    f'extensions {exts} (e.g. ImageNet\'s train/n01440764/'
                    f'n01440764_10026.JPEG)')
        return (f'images with extensions {exts} anywhere under {prefix} '
                f'(e.g. {osp.join(prefix, "<class_name>", "<image>.JPEG")})')

    def load_data_list(self):
        """Check the folder / annotation file, then load as the parent.

        Returns:
            list[dict]: The data list of the parent class.
        """
        name = type(self).__name__
        local = isinstance(
            get_file_backend(self.img_prefix or '.'), LocalBackend)
        if local and self.ann_file and not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{name}: annotation file {self.ann_file} does not exist. '
                f'Expected {self._expected_layout()}; or leave ann_file '
                'empty to scan the image folder')
        if local and not self.ann_file and not osp.isdir(self.img_prefix):
            raise FileNotFoundError(
                f'{name}: dataset folder {self.img_prefix} does not exist '
                f'(data_root={self.data_root!r}, data_prefix='
                f'{self.data_prefix!r}). Expected '
                f'{self._expected_layout()}')
        try:
            data_list = super().load_data_list()
        except RuntimeError as e:
            if 'Found 0 files' not in str(e):
                raise
            data_list = []
        if not data_list:
            raise ValueError(
                f'{name}: dataset folder {self.img_prefix} holds no images '
                f'{"listed in " + self.ann_file if self.ann_file else ""}'
                f'. Expected {self._expected_layout()}')
        return data_list


@DATASETS.register_module()
class CheckedCustomDataset(SeededSamplesMixin, FolderChecksMixin,
                           CustomDataset):
    """mmpretrain's ``CustomDataset`` with clear errors for a missing or
    empty folder (see :class:`FolderChecksMixin`), seeding each sample from
    a ``SeededSampler``'s key (:class:`SeededSamplesMixin`).

    Args:
        **kwargs: Arguments of :class:`mmpretrain.datasets.CustomDataset`.
    """


@DATASETS.register_module()
class CheckedImageNet(SeededSamplesMixin, FolderChecksMixin, ImageNet):
    """mmpretrain's ``ImageNet`` with clear errors for a missing or empty
    folder (see :class:`FolderChecksMixin`), seeding each sample from a
    ``SeededSampler``'s key (:class:`SeededSamplesMixin`).

    Args:
        **kwargs: Arguments of :class:`mmpretrain.datasets.ImageNet`.
    """
