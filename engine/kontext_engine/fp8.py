"""FP8 (e4m3) linear layers: weights quantized once per output channel; activations per token at run
time ("dynamic" scaling) for `fp8`, or weights only (dequantized to bf16 per call) for `fp8-weights`.

Scales are powers of two (each row's largest magnitude lands in (224, 448]), so scaling is exact
in every implementation: the fused GPU kernel, eager CUDA and the CPU emulation give bit-identical
e4m3 values, and dequantizing e4m3 × 2^k into bf16 is exact. e4m3 keeps 3 mantissa bits at any
scale, so a power of two costs nothing but the bottom binade of the subnormal range.

On Ada and Hopper the `fp8` matmul runs on the FP8 tensor cores (`torch._scaled_mm`, fast
accumulation unless the self-check finds it too coarse). Elsewhere `scaled_mm_emulated` multiplies
the same quantized numbers after dequantizing, so a CPU test sees exactly the rounding the GPU
path applies. The GPU suite imports: `quantize_rowwise`, `quantize_activations`,
`scaled_mm_emulated`, `Float8Linear`, `Float8WeightOnlyLinear`, `fuse_qkv`,
`quantize_transformer_blocks`, `quantize_t5_blocks`, `self_check`, `self_check_error`.
"""

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger("kontext_engine")

FP8 = torch.float8_e4m3fn
E4M3_MAX = 448.0  # largest finite e4m3 value
_TINY = 2.0**-100  # an all-zero row gets this as its largest magnitude (its values stay 0)
_MANTISSA_7_4 = 0x600000  # float32 mantissa bits of 1.75 (448 = 1.75 · 2^8)

Mode = Literal["fp8", "fp8-weights"]
# torch._scaled_mm's signature, as far as Float8Linear uses it (tests put faulty kernels here).
Kernel = Callable[..., Tensor]


def _pow2_scales(amax: Tensor) -> tuple[Tensor, Tensor]:
    """(scale, 1/scale), both exact powers of two: the smallest 2^k with amax / 2^k ≤ 448.
    Built from the exponent bits of `amax` (float32), so no rounding happens anywhere."""
    bits = amax.float().clamp(min=_TINY).view(torch.int32)
    exponent = (bits >> 23) & 0xFF  # biased: amax ∈ [2^(e-127), 2^(e-126))
    # amax / 2^(e-135) = 1.m · 256: within 448 while 1.m ≤ 1.75, else one binade more.
    k = exponent - 135 + ((bits & 0x7FFFFF) > _MANTISSA_7_4).to(torch.int32)
    scale = ((k + 127) << 23).view(torch.float32)
    inverse = ((127 - k) << 23).view(torch.float32)
    return scale, inverse


def quantize_rowwise(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (..., K) → (q (..., K) e4m3, scale (..., 1) float32) with x ≈ q · scale, one power-of-two
    scale per row: each row's largest magnitude maps into (224, 448], so nothing overflows.
    Every step is exact except the final round-to-nearest-even into e4m3."""
    scale, inverse = _pow2_scales(x.abs().amax(dim=-1, keepdim=True))
    q = (x.float() * inverse).clamp(-E4M3_MAX, E4M3_MAX).to(FP8)
    return q, scale


def quantize_weight(w: Tensor, rows_per_chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """quantize_rowwise for a weight (out, in), a chunk of rows at a time: the float32 temporaries
    stay small (≤ 1024 rows) while a model is quantized on the device during loading."""
    q = torch.empty(w.shape, dtype=FP8, device=w.device)
    scale = torch.empty(w.shape[0], 1, dtype=torch.float32, device=w.device)
    if w.device.type == "meta":  # no values: allocate what one chunk's temporaries take, and stop
        torch.empty(min(rows_per_chunk, w.shape[0]), w.shape[1], dtype=torch.float32, device=w.device)
        return q, scale
    for start in range(0, w.shape[0], rows_per_chunk):
        q[start : start + rows_per_chunk], scale[start : start + rows_per_chunk] = quantize_rowwise(
            w[start : start + rows_per_chunk]
        )
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    return q.float() * scale


_compiled_quantize: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
_simulate_gpu = False  # memory accounting on the meta device: take the GPU paths (see simulate_gpu_kernels)


def quantize_activations(x: Tensor) -> tuple[Tensor, Tensor]:
    """quantize_rowwise for activations on the hot path. On CUDA it is compiled once (dynamic
    shapes) into one kernel that reads x (once or twice) and writes e4m3 + scales: 3–5 bytes moved
    per element instead of ~33 for the eager chain of abs, amax, upcast, multiply, clamp and cast.
    The numbers are the same (every step but the final rounding is exact; inductor's CPU kernel
    was checked bit for bit, and self_check_error checks the GPU's at every start)."""
    global _compiled_quantize
    if x.device.type == "meta" and _simulate_gpu:
        # What the fused kernel allocates: its two outputs, no temporaries.
        return torch.empty(x.shape, dtype=FP8, device=x.device), torch.empty(
            *x.shape[:-1], 1, dtype=torch.float32, device=x.device
        )
    if x.device.type != "cuda" or torch.compiler.is_compiling():
        return quantize_rowwise(x)  # inside a compiled block inductor fuses it anyway
    if _compiled_quantize is None:
        _compiled_quantize = torch.compile(quantize_rowwise, dynamic=True, fullgraph=True)
    return _compiled_quantize(x)


def scaled_mm_emulated(
    a: Tensor,
    b: Tensor,
    scale_a: Tensor,
    scale_b: Tensor,
    bias: Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
    use_fast_accum: bool = False,
) -> Tensor:
    """torch._scaled_mm's arithmetic in float32 on any device: (a · scale_a) @ (b · scale_b) + bias,
    rounded once to out_dtype. a (M, K) and b (K, N) e4m3, scale_a (M, 1), scale_b (1, N)."""
    y = (a.float() * scale_a) @ (b.float() * scale_b)
    if bias is not None:
        y = y + bias.float()
    return y.to(out_dtype)


def fp8_matmul_supported(device: torch.device) -> bool:
    """FP8 tensor cores: compute capability 8.9 (Ada) or 9.0 (Hopper) and newer."""
    if device.type == "meta":
        return _simulate_gpu
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


@contextlib.contextmanager
def simulate_gpu_kernels() -> Iterator[None]:
    """Memory accounting (kontext_engine.memory): on the meta device, FP8 layers take the GPU
    kernels' paths (`_scaled_mm`, the fused activation quantization) so what is allocated is what
    a GPU allocates."""
    global _simulate_gpu
    previous, _simulate_gpu = _simulate_gpu, True
    try:
        yield
    finally:
        _simulate_gpu = previous


class _E4M3Weights(nn.Module):
    """A linear layer's weight in e4m3 (per output channel, power-of-two scales) and its bias:
    what both FP8 layers store."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_weight(linear.weight.detach())
        self.register_buffer("weight_fp8", q)  # (out, in)
        self.register_buffer("weight_scale", scale)  # (out, 1) float32, powers of two
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)

    @property
    def weight(self) -> None:
        """No dense weight (see weight_fp8); code that checks `isinstance(layer.weight, Tensor)`
        (T5's upcast check, for one) skips it."""
        return None


class Float8Linear(_E4M3Weights):
    """Drop-in for nn.Linear with e4m3 weights (per output channel) and e4m3 activations (per token)."""

    def __init__(self, linear: nn.Linear, fast_accum: bool = True):
        super().__init__(linear)
        self.fast_accum = fast_accum
        self.kernel: Kernel | None = None  # None: _scaled_mm on FP8 tensor cores, else the emulation

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        xq, xs = quantize_activations(x.reshape(-1, self.in_features))  # (M, K), (M, 1)
        kernel = self.kernel or (torch._scaled_mm if fp8_matmul_supported(x.device) else scaled_mm_emulated)
        # b must be column-major: the transpose of the row-major (out, in) weight is.
        bias = None if self.bias is None else self.bias.to(x.dtype)
        y = kernel(
            xq,
            self.weight_fp8.t(),
            scale_a=xs,
            scale_b=self.weight_scale.t(),
            bias=bias,
            out_dtype=x.dtype,
            use_fast_accum=self.fast_accum,
        )
        return y.reshape(*shape[:-1], self.out_features)


class Float8WeightOnlyLinear(_E4M3Weights):
    """nn.Linear whose weight is stored in e4m3 (per output channel, power-of-two scales) and
    dequantized into the input's dtype for each call: half the bytes of bf16, bf16 compute, any
    GPU. Dequantization is exact (e4m3 × 2^k is a bf16 number)."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight_fp8.to(x.dtype)  # exact
        w.mul_(self.weight_scale.to(x.dtype))  # exact: a power of two, in place (one temporary)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))


_UNFUSED = ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj")


@torch.no_grad()
def fuse_qkv(module: nn.Module) -> int:
    """Fuse q, k, v (and the text stream's added q, k, v) into one linear in every attention of
    `module` (diffusers' `fuse_projections`), then delete the unfused linears, which the fused
    attention processor never reads: without this they stay resident (+4.3 GB in bf16). Works on
    any device, meta included. Returns how many attentions were fused."""
    fused = 0
    for attn in list(module.modules()):
        if (
            hasattr(attn, "fuse_projections")
            and hasattr(attn, "to_q")
            and not getattr(attn, "fused_projections", False)
        ):
            attn.fuse_projections()
            if not getattr(attn, "fused_projections", False):
                continue  # a processor that cannot fuse: keep what it reads
            for name in _UNFUSED:
                if hasattr(attn, name):
                    delattr(attn, name)
            fused += 1
    return fused


def _swap_linears(module: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> int:
    swapped = 0
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.Linear) and child.in_features % 16 == 0 and child.out_features % 16 == 0:
            parent_name, _, leaf = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, leaf, make(child))
            del child
            swapped += 1
    return swapped


def quantize_block(block: nn.Module, mode: Mode = "fp8", fast_accum: bool = True) -> int:
    """Swap the linear layers of one block (in place, on whatever device it is) for Float8Linear
    (`fp8`) or Float8WeightOnlyLinear (`fp8-weights`). Returns how many were swapped."""
    if mode == "fp8":
        return _swap_linears(block, lambda lin: Float8Linear(lin, fast_accum))
    return _swap_linears(block, Float8WeightOnlyLinear)


def quantize_transformer_blocks(transformer: nn.Module, mode: Mode = "fp8", fast_accum: bool = True) -> int:
    """Swap the linear layers inside the 19 double and 38 single blocks; the embedders and the
    final projection stay in bf16 (small, and most sensitive to rounding). Returns how many layers
    were swapped (342 in the dev model once q/k/v are fused: fuse_qkv first)."""
    return sum(
        quantize_block(block, mode, fast_accum)
        for blocks in (transformer.transformer_blocks, transformer.single_transformer_blocks)
        for block in blocks
    )


def quantize_t5_blocks(t5: nn.Module) -> int:
    """T5's encoder blocks in e4m3 weights with bf16 compute (9.5 GB → 4.8 GB); the embedding
    table and the final norm stay as they are."""
    return sum(quantize_block(block, "fp8-weights") for block in t5.encoder.block)


def self_check_error(
    device: torch.device,
    dtype: torch.dtype,
    fast_accum: bool = True,
    kernel: Kernel | None = None,
    m: int = 256,
    n: int = 1024,
    k: int = 15360,
) -> float:
    """Largest relative RMS error, per output channel and per token, of one Float8Linear (K = 15360,
    as the single blocks' proj_out) against a float64 emulation of exactly the quantized math,
    rounded to the output dtype as the kernel rounds. Weight rows span 1000× in magnitude, tokens
    100×, and the bias is as large as each channel's output, so a permuted or transposed scale, a
    dropped bias or a coarse accumulation shows: each of those moves some channel by ≥ 10 %, a
    correct kernel moves it by about 1e-4 (only 1-ulp rounding flips). Raises RuntimeError when the
    fused activation quantization differs from the reference bit for bit."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, k, generator=g) * torch.logspace(-1.5, 1.5, n)[torch.randperm(n, generator=g), None]
    x = torch.randn(m, k, generator=g) * torch.logspace(-1, 1, m)[torch.randperm(m, generator=g), None]
    out_scale = (x.pow(2).mean().sqrt() * w.pow(2).sum(dim=1).sqrt()).float()  # typical |x·w| per channel
    bias = torch.randn(n, generator=g) * out_scale
    lin = nn.Linear(k, n).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(w.to(dtype))
        lin.bias.copy_(bias.to(dtype))
    layer = Float8Linear(lin.to(device), fast_accum)
    layer.kernel = kernel
    xd = x.to(device, dtype)
    out = layer(xd).double().cpu()

    xq, xs = quantize_rowwise(x.to(dtype))  # the reference quantization, eager on the CPU
    fq, fs = quantize_activations(xd)
    if not (torch.equal(fq.cpu().view(torch.uint8), xq.view(torch.uint8)) and torch.equal(fs.cpu(), xs)):
        raise RuntimeError("the fused activation quantization does not match the reference bit for bit")
    ref = (xq.double() * xs.double()) @ (layer.weight_fp8.cpu().double() * layer.weight_scale.cpu().double()).t()
    ref = (ref + layer.bias.detach().cpu().double()).to(dtype).double()
    err = out - ref
    per_channel = err.norm(dim=0) / ref.norm(dim=0).clamp(min=1e-30)
    per_token = err.norm(dim=1) / ref.norm(dim=1).clamp(min=1e-30)
    return max(per_channel.max().item(), per_token.max().item())


# Two output roundings' worth (2 · 2^-9 ≈ 3.9e-3, bf16): well above a correct kernel (≈ 1e-4), an
# order of magnitude below the FP8 rounding the emulation already contains (≈ 3 %), and far below
# what a wrong scale layout or a dropped bias gives (≥ 0.1).
SELF_CHECK_BOUND = 2.0**-8


def self_check(
    device: torch.device, dtype: torch.dtype, fast_accum: bool = True, kernel: Kernel | None = None, **shape: int
) -> str | None:
    """Run the FP8 path once on this device against the float64 emulation; None if it is within
    SELF_CHECK_BOUND, else why not (including a missing kernel or driver)."""
    try:
        err = self_check_error(device, dtype, fast_accum, kernel, **shape)
    except Exception as e:  # an unsupported kernel or driver: fall back, say why
        return f"{type(e).__name__}: {e}"
    if not err <= SELF_CHECK_BOUND:
        return f"relative error {err:.2e} against the emulation exceeds {SELF_CHECK_BOUND:.2e}"
    return None


def choose_accumulation(
    device: torch.device, dtype: torch.dtype, kernel: Kernel | None = None, **shape: int
) -> tuple[bool | None, str | None]:
    """(use_fast_accum, None) for the first accumulation that passes the self-check here, fast
    first; (None, why not) when neither does (run bf16 then)."""
    reason = self_check(device, dtype, True, kernel, **shape)
    if reason is None:
        return True, None
    if self_check(device, dtype, False, kernel, **shape) is None:
        log.info("fp8: fast accumulation is too coarse here (%s); accumulating in full precision", reason)
        return False, None
    return None, reason
