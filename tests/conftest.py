"""Shared tiny settings: CPU-fast archs and inputs."""
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

import mixmae_mm  # noqa: F401  (registers every module for all tests)

# The demo data generator is a tool (tools/misc/demo_data.py), not package
# code: tests import it as ``from demo_data import ...``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools/misc'))

#: A tiny encoder: stage grids 16/8/4/2 on 64 x 64 inputs, windows 4/4/4/2,
#: so stages 1-2 have several windows and stages 3-4 are global.
TINY_ARCH = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
TINY_WINDOWS = (4, 4, 4, 2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Runners set mmengine's DefaultScope (e.g. 'mmseg' for an mmseg
    config); later tests that build from mmpretrain's registries must not
    inherit it."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def tiny_backbone_cfg():
    return dict(
        type='MixMAESwin', arch=dict(TINY_ARCH), window_size=TINY_WINDOWS)


@pytest.fixture
def tiny_mixmae_cfg():
    return dict(
        type='MixMAE',
        backbone=dict(
            type='MixMAESwin', arch=dict(TINY_ARCH),
            window_size=TINY_WINDOWS),
        # MixMAE fills in neck.in_channels (256) and the patch sizes (32)
        neck=dict(
            type='MixMAEPretrainDecoder', embed_dims=64, depth=2,
            num_heads=4),
        head=dict(type='MixMAEPretrainHead', norm_pix=True),
        data_preprocessor=dict(
            type='MixMAEDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
