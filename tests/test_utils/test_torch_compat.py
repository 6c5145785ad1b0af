"""The version helpers give the same answers on every supported torch (the
suite runs on 2.1.2 and 2.14.1)."""
import torch
import torch.nn.functional as F

from mixmae_mm.utils.torch_compat import flop_counter_mode


def test_flop_counter_counts_matrix_products():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    with flop_counter_mode() as counter:
        a @ b
    assert counter.get_total_flops() == 2 * 8 * 16 * 4


def test_flop_counter_counts_sdpa_inference_on_the_cpu():
    """Whatever kernel SDPA dispatches to on this torch (the fused CPU
    kernel of newer torch, which torch's own table lacks, or the math
    path's matrix products), its two products are counted."""
    q, k, v = (torch.randn(2, 3, 10, 8) for _ in range(3))
    with torch.no_grad(), flop_counter_mode() as counter:
        F.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 2 * (2 * 2 * 3 * 10 * 10 * 8)
