"""Fixtures shared by the model tests."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

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


@pytest.fixture
def assert_same_train_step():
    """``assert_same_train_step(registry, cfg, name, data)``: this project's
    ``Compilable{name}`` and upstream ``name``, built from the model config
    ``cfg`` (its ``type`` ignored) with the same weights, have the same
    state dict keys, and one ``train_step`` (AdamW) of each on copies of
    ``data``, from the same random state, gives bit-identical logged losses
    and updated weights; the step changed the weights (not vacuous)."""

    def build(registry, cfg, name):
        cfg = {k: v for k, v in cfg.items() if k != 'type'}
        torch.manual_seed(0)
        ours = registry.build(dict(cfg, type=f'Compilable{name}'))
        ours.init_weights()
        theirs = registry.build(dict(cfg, type=name))
        theirs.load_state_dict(ours.state_dict(), strict=True)
        return ours, theirs

    def check(registry, cfg, name, data):
        ours, theirs = build(registry, cfg, name)
        assert type(theirs).__name__ == name
        assert list(ours.state_dict()) == list(theirs.state_dict())
        logs = []
        for model in (ours, theirs):
            model.train()
            wrapper = OptimWrapper(
                torch.optim.AdamW(model.parameters(), lr=1e-3))
            torch.manual_seed(1)  # drop path, dropout, samplers draw
            logs.append(model.train_step(copy.deepcopy(data), wrapper))
        assert logs[0].keys() == logs[1].keys()
        for key in logs[0]:
            torch.testing.assert_close(logs[0][key], logs[1][key], rtol=0,
                                       atol=0, msg=key)
        for (name_, a), b in zip(ours.named_parameters(),
                                 theirs.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name_)
        fresh, _ = build(registry, cfg, name)
        assert any(not torch.equal(a, b)
                   for a, b in zip(fresh.parameters(), ours.parameters()))

    return check
