"""Putting the loaded parts on their device, in the precision asked for, without the device ever
holding more than the final model plus one block.

`load_model` leaves every part on the host; `place_parts` (called by `speed.accelerate`):
- fuses q/k/v in every attention of the transformer and deletes the unfused linears (fp8.fuse_qkv);
- moves the transformer's edges, then each of its 57 blocks, to the device, quantizing each block
  there (`fp8`: e4m3 weights and activations; `fp8-weights`: e4m3 weights, bf16 compute) before the
  next one comes, so the bf16 copy of what runs in FP8 never sits on the device;
- does the same with T5's 24 blocks (in e4m3 weights in both FP8 modes);
- in low-memory mode keeps T5's blocks in pinned host memory instead and streams each onto the
  device for its forward (non-blocking copies): the transformer, CLIP and the VAE stay resident and
  nothing is ever evicted for another part;
- releases the allocator's cache at the end, so what is reserved is what is resident.
The same code runs on the meta device for the memory accounting (kontext_engine.memory), where the
"host" is meta too: every move there is a copy, and `host_side()` marks the host's own allocations.
"""

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from . import fp8

if TYPE_CHECKING:
    from .loading import KontextModel

log = logging.getLogger("kontext_engine")

_host_side = 0


@contextlib.contextmanager
def host_side() -> Iterator[None]:
    """Allocations made inside are host memory (the meta-device accounting does not count them)."""
    global _host_side
    _host_side += 1
    try:
        yield
    finally:
        _host_side -= 1


def in_host_side() -> bool:
    return _host_side > 0


def _copy_to(t: Tensor, device: torch.device) -> Tensor:
    if t.device == device and device.type != "meta":
        return t
    # Non-blocking only host → device: a device → host copy must be complete when it returns.
    return t.to(device, non_blocking=device.type == "cuda", copy=True)


def move(module: nn.Module, device: torch.device, recurse: bool = True) -> None:
    """Every parameter and buffer of `module` (or only its own, with recurse=False) onto `device`,
    in place (the Parameter objects stay), non-blocking from pinned memory. Tensors shared between
    submodules (tied embeddings) are moved once."""
    seen: dict[int, Tensor] = {}
    for m in module.modules() if recurse else [module]:
        for p in m._parameters.values():
            if p is not None and id(p) not in seen:
                p.data = _copy_to(p.data, device)
                seen[id(p)] = p
        for name, b in m._buffers.items():
            if b is not None:
                if id(b) not in seen:
                    seen[id(b)] = _copy_to(b, device)
                m._buffers[name] = seen[id(b)]


def move_except(module: nn.Module, device: torch.device, skip: list[nn.Module]) -> None:
    """move() for every submodule of `module` that is not inside one of `skip` (the blocks)."""
    inside = {id(m) for s in skip for m in s.modules()}
    for m in module.modules():
        if id(m) not in inside:
            move(m, device, recurse=False)


def _release_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def place_blocks(blocks: list[nn.Module], device: torch.device, quantize: Callable[[nn.Module], object] | None) -> None:
    """Each block to `device`, then quantized there, one at a time."""
    for block in blocks:
        move(block, device)
        if quantize is not None:
            quantize(block)


class StreamedBlocks:
    """Keeps each block's tensors in (pinned) host memory and copies them onto the device just
    before the block runs; they are dropped after it (the host copy is kept, so nothing is copied
    back). Copies are non-blocking on the compute stream, so they are ordered with the compute."""

    def __init__(self, blocks: list[nn.Module], device: torch.device):
        self.device = device
        self.host: dict[int, list[tuple[nn.Module, str, str, Tensor]]] = {}
        self.handles = []
        for block in blocks:
            entries = []
            for m in block.modules():
                for kind, table in (("p", m._parameters), ("b", m._buffers)):
                    for name, t in table.items():
                        if t is None:
                            continue
                        host = t.data if device.type != "cuda" else t.data.pin_memory()
                        entries.append((m, kind, name, host))
            self.host[id(block)] = entries
            self._point(block, to_device=False)
            self.handles.append(block.register_forward_pre_hook(lambda mod, _args: self._point(mod, True)))
            self.handles.append(block.register_forward_hook(lambda mod, _args, _out: self._point(mod, False)))

    def _point(self, block: nn.Module, to_device: bool) -> None:
        for m, kind, name, host in self.host[id(block)]:
            t = _copy_to(host, self.device) if to_device else host
            if kind == "p":
                m._parameters[name].data = t  # type: ignore[union-attr]
            else:
                m._buffers[name] = t

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class Parts:
    transformer: nn.Module
    t5: nn.Module
    clip: nn.Module
    vae: nn.Module


def fp8_mode(precision: str) -> fp8.Mode | None:
    return "fp8" if precision == "fp8" else "fp8-weights" if precision == "fp8-weights" else None


def place_parts(
    parts: Parts, device: torch.device, precision: str, low_memory: bool, fast_accum: bool = True
) -> StreamedBlocks | None:
    """Fuse, quantize and move every part to `device` as the module docstring says. `precision` is
    what runs: fp32, bf16, fp8 or fp8-weights (the parts already in its dtype). Returns the
    streamer of T5's blocks in low-memory mode (None otherwise)."""
    mode = fp8_mode(precision)
    t = parts.transformer
    fp8.fuse_qkv(t)  # on the host: the device never holds the unfused copies
    blocks = [*t.transformer_blocks, *t.single_transformer_blocks]
    move_except(t, device, blocks)
    place_blocks(blocks, device, None if mode is None else lambda b: fp8.quantize_block(b, mode, fast_accum))

    t5_blocks = list(parts.t5.encoder.block)
    move_except(parts.t5, device, t5_blocks)
    t5_quantize = None if mode is None else lambda b: fp8.quantize_block(b, "fp8-weights")
    streamed = None
    if low_memory and device.type != "cpu":
        for block in t5_blocks:
            if t5_quantize is not None:  # quantized on the device (fast), then kept on the host
                move(block, device)
                t5_quantize(block)
            with host_side():
                move(block, torch.device("cpu") if device.type != "meta" else device)
        streamed = StreamedBlocks(t5_blocks, device)
    else:
        place_blocks(t5_blocks, device, t5_quantize)
    move(parts.clip, device)
    move(parts.vae, device)
    _release_cache(device)
    return streamed


class DoesNotFit(ValueError):
    """The chosen mode cannot fit the GPU (the message names a setting that would)."""


@dataclass(frozen=True)
class Placed:
    precision: str  # what runs (fp8 falls back to fp8-weights when its self-check fails)
    fp8_fallback_reason: str | None = None
    fast_accum: bool | None = None  # fp8: whether _scaled_mm accumulates fast
    t5_streamed: bool = False


def _fits_or_raise(model: "KontextModel", precision: str) -> None:
    """On CUDA: refuse a mode that cannot fit the card, before anything large is on it."""
    from . import memory

    available = memory.available_bytes(model.device)
    parts = (model.transformer, model.t5, model.clip, model.vae)
    if available >= sum(memory.module_bytes(p) for p in parts) + 8 * 2**30:
        return  # room for everything as loaded plus any activations: no need to count
    configs = {
        "transformer": dict(model.transformer.config),
        "t5": model.t5.config.to_dict(),
        "clip": model.clip.config.to_dict(),
        "vae": dict(model.vae.config),
    }
    table = functools.cache(lambda p, low: memory.mode_memory(p, low, configs=configs))
    problem = memory.check_fits(
        precision, model.offload, available, memory_of=table, fp8_supported=fp8.fp8_matmul_supported(model.device)
    )
    if problem is not None:
        raise DoesNotFit(problem)


def place_model(model: "KontextModel", precision: str) -> Placed:
    """Everything `accelerate` does to put a loaded model on its device: the FP8 self-check (fast
    accumulation first, full-precision accumulation if that is too coarse, fp8-weights if neither
    passes or the GPU has no FP8 tensor cores), the fit check on CUDA, then place_parts."""
    device, reason, fast = model.device, None, None
    if precision == "fp8":
        if device.type == "cuda" and not fp8.fp8_matmul_supported(device):
            reason = "this GPU has no FP8 tensor cores (compute capability 8.9 or newer)"
        else:
            fast, reason = fp8.choose_accumulation(device, model.dtype)
        if reason is not None:
            # Same weights, same memory; only the matmuls run in bf16.
            log.warning("fp8 unavailable here (%s); running fp8-weights", reason)
            precision = "fp8-weights"
    if device.type == "cuda":
        _fits_or_raise(model, precision)
    parts = Parts(model.transformer, model.t5, model.clip, model.vae)
    streamed = place_parts(parts, device, precision, model.offload, fast if fast is not None else True)
    if precision in ("fp8", "fp8-weights"):
        log.info("%s: transformer and T5 blocks in e4m3 (%s)", precision, "T5 streamed" if streamed else "resident")
    return Placed(precision, reason, fast, streamed is not None)
