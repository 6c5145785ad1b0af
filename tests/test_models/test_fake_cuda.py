"""A training step "on a GPU" without one: every encoder family runs with
its parameters and inputs as fake CUDA tensors
(``torch._subclasses.fake_tensor.FakeTensorMode``: shapes, dtypes and
devices, no data), so that a tensor left on the CPU (a device mismatch)
or a read of a device value into Python (``item``, ``nonzero``, ``bool``,
...) raises here as it would stall or fail on a GPU.

What stays on the host is explicit: the mix mask is drawn there, outside
the mode, as the data preprocessor draws it, and enters as a fake CPU
tensor.

The backward pass cannot run on fake CUDA tensors on a machine without a
CUDA driver (torch's autograd engine asks the driver for the device's
context); it runs on the ``meta`` device instead, which takes the same
code path (not the CPU) and also refuses mixing with CPU tensors and value
reads.
"""
import copy
from itertools import chain

import pytest
import torch
from mmpretrain.registry import MODELS
from torch.func import functional_call

from mixmae_mm.models.layers.dense_windows import force_attention_path
from mixmae_mm.models.layers.mixing import mix_images, sample_mix_mask

def _fake_cuda_supported() -> bool:
    """torch 2.1's fake tensors initialise the CUDA driver for a CUDA
    device; newer ones do not."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    try:
        with FakeTensorMode():
            torch.empty(1, device='cuda')
    except RuntimeError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() and not _fake_cuda_supported(),
    reason='this torch cannot make fake CUDA tensors without a CUDA driver')


def _model(cfg, family):
    cfg = copy.deepcopy(cfg)
    if family == 'classifier':
        cfg = dict(
            type='ImageClassifier',
            backbone=cfg['backbone'],
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=256))
    return MODELS.build(cfg).train()


def _inputs(family, convert):
    """The loss inputs; ``convert`` moves device tensors (the mask is
    drawn on the host and stays there)."""
    imgs = torch.randn(4, 3, 64, 64)
    if family == 'classifier':
        from mmpretrain.structures import DataSample
        samples = [DataSample().set_gt_label(i % 5) for i in range(4)]
        return convert(imgs), samples
    mask = sample_mix_mask(4, (2, 2), 0.5, per_pair=family in ('pvtv2', 'twins'))
    mixed = mix_images(imgs, mask)
    return [convert(imgs), convert(mixed), mask], None


@pytest.mark.parametrize('family',
                         ['swin', 'pvtv2', 'twins', 'classifier'])
def test_loss_on_fake_cuda(family_mixmae_cfg, family):
    from torch._subclasses.fake_tensor import FakeTensorMode
    model = _model(family_mixmae_cfg(family), family)
    mode = FakeTensorMode()
    inputs, samples = _inputs(family, lambda t: t)  # real, host
    with mode:
        state = {
            name: mode.from_tensor(t).to('cuda')
            for name, t in chain(model.named_parameters(),
                                 model.named_buffers())
        }
        if family == 'classifier':
            inputs = mode.from_tensor(inputs).to('cuda')
            for s in samples:  # labels live with the images
                s.gt_label = mode.from_tensor(s.gt_label).to('cuda')
        else:
            imgs, mixed, mask = inputs
            inputs = [
                mode.from_tensor(imgs).to('cuda'),
                mode.from_tensor(mixed).to('cuda'),
                mode.from_tensor(mask)  # the host mask, as drawn
            ]
        losses = functional_call(model, state, (inputs, samples),
                                 dict(mode='loss'))
    assert losses and all(v.device.type == 'cuda' for v in losses.values())
    assert all(v.dim() == 0 for v in losses.values())


def test_fake_cuda_catches_a_tensor_left_on_the_cpu(tiny_mixmae_cfg):
    """Positive controls: a CPU tensor met by the CUDA path raises (the
    target images forgotten on the host), and so does a value read (the
    host planner of the eager CPU path, forced here)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    model = _model(tiny_mixmae_cfg, 'swin')
    mode = FakeTensorMode()
    (imgs, mixed, mask), _ = _inputs('swin', lambda t: t)
    with mode:
        state = {
            name: mode.from_tensor(t).to('cuda')
            for name, t in model.named_parameters()
        }
        cuda_imgs = mode.from_tensor(imgs).to('cuda')
        inputs = [
            mode.from_tensor(imgs),
            mode.from_tensor(mixed).to('cuda'),
            mode.from_tensor(mask)
        ]
        with pytest.raises(Exception, match='(?i)device'):
            functional_call(model, state, (inputs, None), dict(mode='loss'))
        inputs[0] = cuda_imgs
        with force_attention_path('cells'), pytest.raises(
                Exception, match='(?i)unique|data.dependent|nonzero'):
            functional_call(model, state, (inputs, None), dict(mode='loss'))


@pytest.mark.parametrize('family',
                         ['swin', 'pvtv2', 'twins', 'classifier'])
def test_training_step_on_meta(family_mixmae_cfg, family):
    """Backward and optimizer step on the meta device (values-free like a
    fake CUDA tensor; the same path as on a GPU)."""
    model = _model(family_mixmae_cfg(family), family).to('meta')
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs, samples = _inputs(family, lambda t: t.to('meta'))
    if family == 'classifier':
        for s in samples:
            s.gt_label = s.gt_label.to('meta')
    losses = model(inputs, samples, mode='loss')
    sum(losses.values()).backward()
    optim.step()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.device.type == 'meta'
                         for g in grads)
