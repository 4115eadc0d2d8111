"""Deployment-time speed settings: precision (bf16 / FP8), fused QKV, regional compilation,
the attention kernel, low-memory offload and bucket warm-up. Chosen once at start, reported in
`ready`; the sampling loop itself does not change.
"""

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from . import fp8, placement
from .loading import KontextModel

log = logging.getLogger("kontext_engine")

Precision = Literal["auto", "fp32", "bf16", "fp8", "fp8-weights"]


@dataclass(frozen=True)
class SpeedReport:
    precision: str  # what runs: fp32, bf16 or fp8 (fp8 = e4m3 linear layers, bf16 elsewhere)
    compiled: bool
    fp8_fallback_reason: str | None = None


def resolve_precision(
    requested: Precision,
    device: torch.device,
    variant: str = "dev",
    available: Callable[[torch.device], int] | None = None,
) -> str:
    """`auto`: FP8 where the GPU has FP8 tensor cores; on other GPUs bf16 when the model fits the
    card in bf16, else fp8-weights (the 12B model on a 24 GB Ampere card); float32 on CPU.
    `available` gives the card's free bytes (default: what CUDA says)."""
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "fp32"
    if fp8.fp8_matmul_supported(device):
        return "fp8"
    if variant == "tiny":
        return "bf16"
    from . import memory  # the meta-device accounting costs seconds: only where it decides

    free = (available or memory.available_bytes)(device)
    return "bf16" if memory.needed_bytes(memory.dev_mode("bf16", False)) <= free else "fp8-weights"


def model_dtype(precision: str) -> torch.dtype:
    return torch.float32 if precision == "fp32" else torch.bfloat16


def accelerate(model: KontextModel, precision: str, compile_blocks: bool, compile_cache: Path | None) -> SpeedReport:
    """Apply the speed settings to a loaded model, in place, and put it on its device. The parts
    are still on the host here: placement fuses q/k/v (the unfused linears deleted), quantizes
    block by block on the way to the device (fp8, fp8-weights) and, in low-memory mode, leaves
    T5's blocks on the host to stream in; it refuses a mode that cannot fit the GPU."""
    t = model.transformer
    placed = placement.place_model(model, precision)
    precision, reason = placed.precision, placed.fp8_fallback_reason
    if compile_blocks:
        compile_transformer(t, model.device, compile_cache)
    return SpeedReport(precision=precision, compiled=compile_blocks, fp8_fallback_reason=reason)


def resolve_compile(requested: str | bool, device: torch.device) -> bool:
    """`auto` (the default): compile on CUDA, not on the CPU (there it costs more than it saves)."""
    if isinstance(requested, bool):
        return requested
    if requested in ("auto", ""):
        return device.type == "cuda"
    if requested in ("on", "true", "1", "yes"):
        return True
    if requested in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"--compile must be auto, on or off, got {requested!r}")


def compile_transformer(
    transformer: torch.nn.Module, device: torch.device, cache: Path | None = None, backend: Any = "inductor"
) -> None:
    """Regional compilation: each of the 57 blocks is compiled, and the blocks of one kind share
    their graphs, so there are two kinds to compile, not 57 blocks. Every dimension is dynamic, so one graph
    serves every bucket's sequence length; batch 1 is specialised (torch does that for size 1),
    so warm-up runs batch 1 and batch 2 and no request ever compiles (Editor.warm_up).
    `backend` is for tests (e.g. a counting `eager` backend)."""
    if cache is not None:
        # Inductor's caches in the data directory make restarts skip most compilation.
        cache.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache))
        os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
        os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    options: dict[str, Any] = {"backend": backend, "dynamic": True, "fullgraph": False}
    if backend == "inductor":
        options["mode"] = "max-autotune-no-cudagraphs" if device.type == "cuda" else "default"
    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
        block.compile(**options)


# The attention kernels allowed, in PyTorch's own priority order, MATH last as the fallback that
# always works. No `set_priority`: forcing cuDNN first bypasses PyTorch's guard against cuDNN
# builds that are wrong at sequence lengths that are not multiples of 128 (every non-square
# bucket); PyTorch picks cuDNN itself where it is known to be safe.
_ALLOWED = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")


def _allowed_backends() -> list[Any]:
    from torch.nn.attention import SDPBackend

    return [getattr(SDPBackend, name) for name in _ALLOWED if hasattr(SDPBackend, name)]


@contextlib.contextmanager
def fastest_attention(device: torch.device) -> Iterator[None]:
    """On GPU: flash, memory-efficient, cuDNN (where PyTorch deems it safe) or math attention,
    whichever PyTorch picks first for the shapes; the CPU as is."""
    if device.type != "cuda":
        yield
        return
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(_allowed_backends()):
        yield


_BACKEND_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


def attention_backend(device: torch.device, dtype: torch.dtype, heads: int, head_dim: int, tokens: int) -> str:
    """Which SDPA kernel runs for one attention of `tokens` tokens (e.g. "flash"), as PyTorch
    chooses it inside `fastest_attention`; "unknown" where this torch cannot say."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        return "unknown"
    try:
        q = torch.zeros(1, heads, tokens, head_dim, device=device, dtype=dtype)
        with fastest_attention(device):
            choice = int(choose(q, q, q, None, 0.0, False))
        return _BACKEND_NAMES.get(choice, f"backend {choice}")
    except Exception as e:  # no kernel at all for these shapes: say so, the math path still runs
        return f"unknown ({type(e).__name__})"


def warmup_buckets(spec: str, compiled: bool) -> list[tuple[int, int]]:
    """`auto` (the default): 1024×1024 when the transformer is compiled, so compilation happens
    before `ready` (every bucket shares its graphs), nothing otherwise; else as parse_buckets."""
    if spec == "auto":
        return [(1024, 1024)] if compiled else []
    return parse_buckets(spec)


def parse_buckets(spec: str) -> list[tuple[int, int]]:
    """`none`, `all`, `auto` (checked here, resolved by warmup_buckets), or comma-separated `WxH`
    from the preferred resolutions."""
    from .resolution import PREFERRED_RESOLUTIONS

    if spec in ("", "none", "auto"):
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
