"""Fixtures shared by the model tests."""
import pytest

from mixmae_mm.models.layers.dense_windows import force_attention_path


@pytest.fixture(params=['cells', 'static'])
def attention_path(request):
    """Run a test on each attention path of the Swin encoder (the host-
    planned cells and the static-shape dense windows), which production
    code chooses automatically: both must pass the same oracles."""
    with force_attention_path(request.param):
        yield request.param
