"""Fixtures shared by the model tests."""
import copy

import pytest

from mixmae_mm.models.layers.dense_windows import force_attention_path


@pytest.fixture(params=['cells', 'static'])
def attention_path(request):
    """Run a test on each attention path of the Swin encoder (the host-
    planned cells and the static-shape dense windows), which production
    code chooses automatically: both must pass the same oracles."""
    with force_attention_path(request.param):
        yield request.param


#: Tiny encoders of the non-Swin families (the Swin one is the
#: ``tiny_mixmae_cfg`` backbone): PVTv2 with two blocks in stage 2; Twins-SVT
#: with LSA in blocks 0 and GSA in blocks 1 (windows 7 straddle the 32-px
#: squares at 64 px).
TINY_BACKBONES = dict(
    pvtv2=dict(
        type='MixMAEPVTv2',
        arch=dict(embed_dims=8, num_layers=[1, 2, 1, 1],
                  num_heads=[1, 2, 3, 4], mlp_ratios=[2, 4, 2, 3]),
        out_indices=(3, )),
    twins=dict(
        type='MixMAETwins',
        arch=dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4],
                  mlp_ratios=[2, 4, 2, 3], depths=[2, 2, 1, 2],
                  window_sizes=[7, 7, 7, 7]),
        out_indices=(3, )))


@pytest.fixture
def family_mixmae_cfg(tiny_mixmae_cfg):
    """``family_mixmae_cfg(family)``: the tiny MixMAE config with that
    family's tiny encoder (``TINY_BACKBONES``; any other family keeps the
    Swin one)."""

    def cfg_of(family):
        cfg = copy.deepcopy(tiny_mixmae_cfg)
        if family in TINY_BACKBONES:
            cfg['backbone'] = copy.deepcopy(TINY_BACKBONES[family])
        return cfg

    return cfg_of
