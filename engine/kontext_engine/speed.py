"""Deployment-time speed settings: precision (bf16 / FP8), fused QKV, regional compilation,
the attention kernel, low-memory offload and bucket warm-up. Chosen once at start, reported in
`ready`; the sampling loop itself does not change.
"""

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from . import fp8
from .loading import KontextModel

log = logging.getLogger("kontext_engine")

Precision = Literal["auto", "fp32", "bf16", "fp8"]


@dataclass(frozen=True)
class SpeedReport:
    precision: str  # what runs: fp32, bf16 or fp8 (fp8 = e4m3 linear layers, bf16 elsewhere)
    compiled: bool
    fp8_fallback_reason: str | None = None


def resolve_precision(requested: Precision, device: torch.device) -> str:
    """`auto`: FP8 where the GPU has FP8 tensor cores, bf16 on other GPUs, float32 on CPU."""
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "fp32"
    return "fp8" if fp8.fp8_matmul_supported(device) else "bf16"


def model_dtype(precision: str) -> torch.dtype:
    return torch.float32 if precision == "fp32" else torch.bfloat16


def accelerate(model: KontextModel, precision: str, compile_blocks: bool, compile_cache: Path | None) -> SpeedReport:
    """Apply the speed settings to a loaded model, in place. In low-memory mode the transformer is
    still on the CPU here, so it is quantized before it ever takes GPU memory."""
    t = model.transformer
    reason = None
    if model.device.type == "cuda":
        # One (3·D, D) matmul instead of three for q, k, v in every attention.
        for module in t.modules():
            if hasattr(module, "fuse_projections") and hasattr(module, "to_q"):
                module.fuse_projections()
    if precision == "fp8":
        reason = fp8.self_check(model.device, model.dtype)
        if reason is None:
            n = fp8.quantize_transformer_blocks(t)
            log.info("fp8: %d linear layers in e4m3 with dynamic activation scales", n)
        else:
            log.warning("fp8 unavailable here (%s); running bf16", reason)
            precision = "bf16"
    if compile_blocks:
        if compile_cache is not None:
            # Inductor's caches in the data directory make restarts skip most compilation.
            compile_cache.mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache))
            os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
            os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
        # Regional compilation: the 57 blocks share two graphs, so compiling costs seconds, not
        # minutes. Sequence length is dynamic, so every bucket uses the same graphs: no
        # recompilation on a request.
        mode = "max-autotune-no-cudagraphs" if model.device.type == "cuda" else "default"
        for block in [*t.transformer_blocks, *t.single_transformer_blocks]:
            block.compile(mode=mode, dynamic=True, fullgraph=False)
    if not model.offload:
        t.to(model.device)  # low-memory mode moves it in when needed (Editor)
    return SpeedReport(precision=precision, compiled=compile_blocks, fp8_fallback_reason=reason)


@contextlib.contextmanager
def fastest_attention(device: torch.device) -> Iterator[None]:
    """On GPU prefer cuDNN attention, then FlashAttention, then memory-efficient; CPU as is."""
    if device.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    with sdpa_kernel(order, set_priority=True):
        yield


def parse_buckets(spec: str) -> list[tuple[int, int]]:
    """`none`, `all`, or comma-separated `WxH` from the preferred resolutions."""
    from .resolution import PREFERRED_RESOLUTIONS

    if spec in ("", "none"):
        return []
    if spec == "all":
        return list(PREFERRED_RESOLUTIONS)
    buckets = []
    for item in spec.split(","):
        w, _, h = item.strip().partition("x")
        if not (w.isdigit() and h.isdigit()) or (int(w), int(h)) not in PREFERRED_RESOLUTIONS:
            raise ValueError(f"warm-up bucket {item!r} is not one of the preferred resolutions (WxH, e.g. 1024x1024)")
        buckets.append((int(w), int(h)))
    return buckets
