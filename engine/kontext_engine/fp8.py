"""FP8 (e4m3) linear layers for the transformer: weights quantized once per output channel,
activations quantized per token at run time ("dynamic" scaling).

On Hopper (and Ada) the matmul runs in FP8 on the tensor cores via `torch._scaled_mm`, about
twice the bf16 rate. Elsewhere the same quantized numbers are multiplied after dequantizing, so a
CPU test sees exactly the rounding the GPU path applies.
"""

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger("kontext_engine")

FP8 = torch.float8_e4m3fn
E4M3_MAX = 448.0  # largest finite e4m3 value
_TINY = 1e-12  # keeps an all-zero row's scale from being 0


def quantize_rowwise(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (..., K) → (q (..., K) e4m3, scale (..., 1) float32) with x ≈ q · scale, one scale per row:
    each row's largest magnitude maps to 448, so nothing overflows and little range is wasted."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=_TINY) / E4M3_MAX
    q = (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(FP8)
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    return q.float() * scale


def fp8_matmul_supported(device: torch.device) -> bool:
    """FP8 tensor cores: compute capability 8.9 (Ada) or 9.0 (Hopper) and newer."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


class Float8Linear(nn.Module):
    """Drop-in for nn.Linear with e4m3 weights (per output channel) and e4m3 activations (per token)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_rowwise(linear.weight.detach())
        self.register_buffer("weight_fp8", q)  # (out, in)
        self.register_buffer("weight_scale", scale)  # (out, 1) float32
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        xq, xs = quantize_rowwise(x.reshape(-1, self.in_features))  # (M, K), (M, 1)
        if fp8_matmul_supported(x.device):
            # b must be column-major: the transpose of the row-major (out, in) weight is.
            y = torch._scaled_mm(
                xq, self.weight_fp8.t(), scale_a=xs, scale_b=self.weight_scale.t(), bias=self.bias, out_dtype=x.dtype
            )
        else:
            y = dequantize(xq, xs) @ dequantize(self.weight_fp8, self.weight_scale).t()
            if self.bias is not None:
                y = y + self.bias.float()
            y = y.to(x.dtype)
        return y.reshape(*shape[:-1], self.out_features)


def quantize_transformer_blocks(transformer: nn.Module) -> int:
    """Swap the linear layers inside the 19 double and 38 single blocks for Float8Linear; the
    embedders and the final projection stay in bf16 (small, and most sensitive to rounding).
    Returns how many layers were swapped."""
    swapped = 0
    for blocks in (transformer.transformer_blocks, transformer.single_transformer_blocks):
        for block in blocks:
            for name, module in list(block.named_modules()):
                if isinstance(module, nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0:
                    parent_name, _, child = name.rpartition(".")
                    parent = block.get_submodule(parent_name) if parent_name else block
                    setattr(parent, child, Float8Linear(module))
                    swapped += 1
    return swapped


def self_check(device: torch.device, dtype: torch.dtype) -> str | None:
    """Run one FP8 matmul against the reference on this device; None if it works, else why not."""
    try:
        torch.manual_seed(0)
        ref = nn.Linear(256, 256).to(device, dtype)
        x = torch.randn(64, 256, device=device, dtype=dtype)
        err = (Float8Linear(ref)(x).float() - ref(x).float()).norm() / ref(x).float().norm()
        return None if err.item() < 0.1 else f"relative error {err.item():.3f} too large"
    except Exception as e:  # an unsupported kernel or driver: fall back, say why
        return f"{type(e).__name__}: {e}"
