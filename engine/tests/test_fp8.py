"""FP8 numerics on CPU: the same quantized numbers the GPU path multiplies on its tensor cores."""

import torch
from torch import nn

from kontext_engine import fp8
from kontext_engine.speed import resolve_precision


def test_rowwise_quantization_maps_each_rows_largest_value_to_448() -> None:
    x = torch.randn(64, 256) * torch.logspace(-3, 3, 64)[:, None]  # rows of very different scales
    q, scale = fp8.quantize_rowwise(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.allclose(q.float().abs().amax(dim=1), torch.full((64,), 448.0))


def test_dequantized_values_are_within_half_an_e4m3_step() -> None:
    torch.manual_seed(0)
    x = torch.randn(128, 512) * torch.logspace(-2, 2, 128)[:, None]
    q, scale = fp8.quantize_rowwise(x)
    err = (fp8.dequantize(q, scale) - x).abs()
    # e4m3 keeps 3 mantissa bits: relative rounding error ≤ 2^-4 for normal numbers; below the
    # smallest normal (2^-6 in scaled units) the step is fixed at 2^-9, so half a step is 2^-10.
    bound = torch.maximum(x.abs() / 16, 2.0**-10 * scale)
    assert bool((err <= bound * (1 + 1e-6)).all())
    assert (err / x.abs().clamp(min=1e-6)).median() < 0.03  # typical error far below the bound


def test_all_zero_rows_survive() -> None:
    q, scale = fp8.quantize_rowwise(torch.zeros(2, 16))
    assert torch.equal(fp8.dequantize(q, scale), torch.zeros(2, 16))


def test_float8_linear_matches_float32_within_the_stated_bound() -> None:
    torch.manual_seed(1)
    ref = nn.Linear(512, 768)
    x = torch.randn(4, 100, 512)
    out, expected = fp8.Float8Linear(ref)(x), ref(x)
    assert out.shape == expected.shape == (4, 100, 768) and out.dtype == torch.float32
    # Stated bound: relative RMS error ≤ 5% (each operand carries ≤ 6.25% rounding, which averages out).
    rel = (out - expected).norm() / expected.norm()
    assert rel < 0.05, rel


def test_quantizing_the_tiny_transformer_swaps_block_linears_only(model) -> None:  # type: ignore[no-untyped-def]
    import copy

    t = copy.deepcopy(model.transformer)
    n = fp8.quantize_transformer_blocks(t)
    assert n > 0
    assert isinstance(t.transformer_blocks[0].ff.net[2], fp8.Float8Linear)
    assert isinstance(t.x_embedder, nn.Linear) and isinstance(t.proj_out, nn.Linear)  # edges stay exact


def test_fp8_self_check_passes_on_cpu_emulation() -> None:
    assert fp8.self_check(torch.device("cpu"), torch.float32) is None


def test_precision_auto_is_fp32_on_cpu() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp8", torch.device("cpu")) == "fp8"
