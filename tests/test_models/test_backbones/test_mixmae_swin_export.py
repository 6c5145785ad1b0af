"""The dense encoder (no mix mask) exports to ONNX and traces with
``torch.jit.trace``; onnxruntime and the traced module give PyTorch's
outputs.

Both use the TorchScript tracer, the exporter that torch 2.1 and 2.14 share
(torch >= 2.9 defaults to the torch.export-based one, which torch 2.1 does
not have). A trace is for one input size: the stages' token layouts depend
on the map size and enter the graph as constants.
"""
import inspect
import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from mmpretrain.registry import MODELS

#: Batch and image sizes: square, non-square, and not a multiple of 32
#: (padded inside, outputs cropped back).
SHAPES = [(2, 3, 64, 64), (1, 3, 64, 96), (1, 3, 50, 70)]

pytestmark = [
    # the tracer warns that shapes become constants: intended, see above
    pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning'),
    # torch >= 2.9 calls the TorchScript exporter legacy and torch.jit
    # deprecated; both still work and are what torch 2.1 has
    pytest.mark.filterwarnings('ignore::DeprecationWarning'),
    pytest.mark.filterwarnings('ignore:`torch.jit.trace.*is deprecated'),
]


@pytest.fixture
def encoder(tiny_backbone_cfg):
    model = MODELS.build(dict(tiny_backbone_cfg, out_indices=(0, 1, 2, 3)))
    model.init_weights()
    return model.eval()


def _onnx_export(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    """The model exported by the TorchScript exporter, as bytes."""
    # torch >= 2.9 needs dynamo=False for it; torch 2.1 has no such argument
    kwargs = {}
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    f = io.BytesIO()
    # opset 17: LayerNormalization is one op (torch 2.1 goes up to 17)
    torch.onnx.export(
        model, (x, ),
        f,
        input_names=['img'],
        output_names=[f'stage{i}' for i in model.out_indices],
        opset_version=17,
        **kwargs)
    return f.getvalue()


@pytest.mark.parametrize('shape', SHAPES)
def test_onnxruntime_matches_pytorch(encoder, shape):
    model = _onnx_export(encoder, torch.randn(shape))
    onnx.checker.check_model(onnx.load_from_string(model))
    session = ort.InferenceSession(
        model, providers=['CPUExecutionProvider'])
    # other images than the traced ones: no value of those is baked in
    x = torch.randn(shape)
    with torch.no_grad():
        expected = encoder(x)
    outs = session.run(None, {'img': x.numpy()})
    assert len(outs) == len(expected) == 4
    for out, ref in zip(outs, expected):
        # fp32 with another summation order (onnxruntime's MatMul, Softmax
        # and LayerNorm kernels): about 3e-6 on these O(1) normed outputs;
        # a wrong index or bias would be off by O(1)
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('shape', SHAPES)
def test_jit_trace_matches_pytorch(encoder, shape):
    x = torch.randn(shape)
    # without gradients, as exported: on the CPU the attention takes the
    # fused SDPA kernel only then, so a trace with gradients would record
    # another (equivalent) graph than its check run
    with torch.no_grad():
        traced = torch.jit.trace(encoder, (x, ))
        x = torch.randn(shape)  # other images than the traced ones
        expected = encoder(x)
        outs = traced(x)
    assert len(outs) == len(expected) == 4
    for out, ref in zip(outs, expected):
        # the same aten ops on the same inputs: bit for bit
        assert torch.equal(out, ref)
