"""GPU memory per mode, computed on the meta device by the engine's own code: the parts built from
their configs, placed by `placement.place_parts` (fusing, quantizing, streaming as the engine
does), then one text encoding, one VAE encode of a 1024² condition image, one transformer step at
1024² (4096 target + 4096 condition + 512 text tokens) and one VAE decode, each run under a
dispatch mode that counts the bytes of every tensor the device would hold. The tests and the table
in docs/performance.md come from here, so neither can drift from the code:

    python -m kontext_engine.memory --markdown      # (in engine/) the docs table

What the count assumes: the GPU kernels' allocations (FlashAttention/cuDNN attention: its output
only; the fused FP8 activation quantization: its outputs only; `_scaled_mm`), eager execution
(compiled blocks allocate less), batch 1, and the caching allocator's fragmentation left out
(`FIT_HEADROOM` covers it in the fit check). The GPU suite imports `mode_memory`, `memory_table`,
`markdown_table`, `check_fits`, `available_bytes` and `DeviceBytes`.
"""

import argparse
import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import fp8, placement
from .configs import PRESETS

META = torch.device("meta")
GB = 1e9
TEXT_TOKENS, CLIP_TOKENS = 512, 77
SIDE = 1024  # output and condition image side: 4096 target + 4096 condition tokens
FIT_HEADROOM = 0.5 * 2**30  # allocator fragmentation and kernels' workspaces, on top of the peak
# A ViT-base classifier in float32 (Falconsai/nsfw_image_detection), when the safety checker is on.
SAFETY_CHECKER_BYTES = 343_220_000

MODES: list[tuple[str, bool]] = [
    ("bf16", False),
    ("fp8", False),
    ("fp8-weights", False),
    ("bf16", True),
    ("fp8", True),
    ("fp8-weights", True),
]


class DeviceBytes(TorchDispatchMode):
    """Counts the bytes of the meta storages created while it is active (`live`, `peak`), except
    views, in-place results and what `placement.host_side()` marks as host memory. A storage stops
    counting when its last tensor dies."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}

    def reset_peak(self) -> None:
        self.peak = self.live

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if placement.in_host_side() or any(r.alias_info is not None for r in func._schema.returns):
            return out
        inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type != "meta":
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in inputs or key in self._refs:
                continue
            n = storage.nbytes()
            self.live += n
            self.peak = max(self.peak, self.live)
            self._refs[key] = weakref.ref(storage, functools.partial(self._freed, key, n))
        return out

    def _freed(self, key: int, n: int, _ref: object) -> None:
        self.live -= n
        self._refs.pop(key, None)


def _flash_like(query, key, value, *args, **kwargs):  # type: ignore[no-untyped-def]
    """What FlashAttention/cuDNN attention allocates: the output (and a logsumexp, freed)."""
    torch.empty(query.shape[:-1], dtype=torch.float32, device=query.device)
    return torch.empty(*query.shape[:-1], value.shape[-1], dtype=query.dtype, device=query.device)


@contextlib.contextmanager
def _gpu_like() -> Iterator[None]:
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _flash_like
    try:
        with fp8.simulate_gpu_kernels(), torch.no_grad():
            yield
    finally:
        F.scaled_dot_product_attention = original


def meta_parts(
    transformer: dict[str, Any], t5: dict[str, Any], clip: dict[str, Any], vae: dict[str, Any], dtype: torch.dtype
) -> placement.Parts:
    """The four parts on the meta device, in `dtype`, from their constructor configs."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    def clean(cfg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in cfg.items() if not k.startswith("_")}

    with torch.device(META):
        parts = placement.Parts(
            transformer=FluxTransformer2DModel(**clean(transformer)),
            t5=T5EncoderModel(T5Config(**clean(t5))),
            clip=CLIPTextModel(CLIPTextConfig(**clean(clip))),
            vae=AutoencoderKL(**clean(vae)),
        )
    for part in (parts.transformer, parts.t5, parts.clip, parts.vae):
        part.to(dtype).eval().requires_grad_(False)
    return parts


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (shared tensors once)."""
    seen: dict[int, int] = {}
    for t in [*module.parameters(), *module.buffers()]:
        seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def device_bytes(module: torch.nn.Module, device: torch.device) -> int:
    """module_bytes of the tensors that are on `device` now (streamed blocks are not, between calls)."""
    return sum(
        t.numel() * t.element_size()
        for t in {id(t): t for t in [*module.parameters(), *module.buffers()]}.values()
        if t.device == device
    )


@dataclass(frozen=True)
class ModeMemory:
    """Bytes on the device for one mode (precision, low memory) of one model configuration."""

    precision: str
    low_memory: bool
    transformer: int  # resident
    t5: int  # resident (low memory: the embedding table; its blocks stream in one at a time)
    clip: int
    vae: int
    load_peak: int  # while placing the parts (quantizing on the device, block by block)
    text_peak: int  # CLIP + T5 encoding of a prompt
    vae_encode_peak: int  # the 1024² condition image
    step_peak: int  # one transformer step at 1024²
    vae_decode_peak: int  # the 1024² output

    @property
    def resident(self) -> int:
        return self.transformer + self.t5 + self.clip + self.vae

    @property
    def peak(self) -> int:
        """The most allocated at any time, load included."""
        return max(self.load_peak, self.text_peak, self.vae_encode_peak, self.step_peak, self.vae_decode_peak)

    @property
    def setting(self) -> str:
        low = " + low memory" if self.low_memory else ""
        return f"{self.precision}{low}"


def mode_memory(
    precision: str,
    low_memory: bool,
    preset: str = "dev",
    configs: dict[str, dict[str, Any]] | None = None,
    side: int = SIDE,
) -> ModeMemory:
    """Place a meta copy of the model as the engine would, then run each phase of an edit at
    `side`² and record the device's bytes. `configs` (keys transformer, t5, clip, vae) override
    the preset's, e.g. a loaded model's own."""
    p = PRESETS[preset]
    cfg = {"transformer": p.transformer, "t5": p.t5, "clip": p.clip, "vae": p.vae, **(configs or {})}
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    parts = meta_parts(cfg["transformer"], cfg["t5"], cfg["clip"], cfg["vae"], dtype)
    with _gpu_like():
        track = DeviceBytes()
        with track:
            placement.place_parts(parts, META, precision, low_memory)
            load_peak = track.peak
            resident = track.live

            def phase(run) -> int:  # type: ignore[no-untyped-def]
                track.reset_peak()
                run()
                return track.peak

            text_peak = phase(lambda: _encode_text(parts, dtype))
            vae_encode_peak = phase(lambda: _vae_encode(parts, dtype, side))
            step_peak = phase(lambda: _step(parts, dtype, side))
            vae_decode_peak = phase(lambda: _vae_decode(parts, dtype, side))
        assert abs(track.live - resident) < 2**20, "a phase left tensors on the device"
    t5 = device_bytes(parts.t5, META) if not low_memory else _t5_resident(parts)
    return ModeMemory(
        precision=precision,
        low_memory=low_memory,
        transformer=module_bytes(parts.transformer),
        t5=t5,
        clip=module_bytes(parts.clip),
        vae=module_bytes(parts.vae),
        load_peak=load_peak,
        text_peak=text_peak,
        vae_encode_peak=vae_encode_peak,
        step_peak=step_peak,
        vae_decode_peak=vae_decode_peak,
    )


def _t5_resident(parts: placement.Parts) -> int:
    blocks = {id(t) for b in parts.t5.encoder.block for t in [*b.parameters(), *b.buffers()]}
    return sum(
        t.numel() * t.element_size()
        for t in {id(t): t for t in [*parts.t5.parameters(), *parts.t5.buffers()]}.values()
        if id(t) not in blocks
    )


def _encode_text(parts: placement.Parts, dtype: torch.dtype) -> None:
    clip_ids = torch.zeros(1, CLIP_TOKENS, dtype=torch.long, device=META)
    parts.clip(clip_ids, output_hidden_states=False).pooler_output.to(dtype)
    t5_ids = torch.zeros(1, TEXT_TOKENS, dtype=torch.long, device=META)
    parts.t5(t5_ids, output_hidden_states=False)[0].to(dtype)


def _vae_encode(parts: placement.Parts, dtype: torch.dtype, side: int) -> None:
    x = torch.empty(1, 3, side, side, dtype=dtype, device=META)
    parts.vae.encode(x).latent_dist.mode()


def _vae_decode(parts: placement.Parts, dtype: torch.dtype, side: int) -> None:
    z = torch.empty(1, parts.vae.config.latent_channels, side // 8, side // 8, dtype=dtype, device=META)
    parts.vae.decode(z, return_dict=False)[0].float()


def _step(parts: placement.Parts, dtype: torch.dtype, side: int) -> None:
    """One denoising step as sampler.denoise runs it: [target | condition] image tokens, text."""
    t = parts.transformer
    tokens = 2 * (side // 16) ** 2
    cfg = t.config
    x = torch.empty(1, tokens, cfg.in_channels, dtype=dtype, device=META)
    txt = torch.empty(1, TEXT_TOKENS, cfg.joint_attention_dim, dtype=dtype, device=META)
    pooled = torch.empty(1, cfg.pooled_projection_dim, dtype=dtype, device=META)
    one = torch.empty(1, dtype=dtype, device=META)
    img_ids = torch.zeros(tokens, 3, dtype=dtype, device=META)
    txt_ids = torch.zeros(TEXT_TOKENS, 3, dtype=dtype, device=META)
    t(
        hidden_states=x,
        encoder_hidden_states=txt,
        pooled_projections=pooled,
        timestep=one,
        img_ids=img_ids,
        txt_ids=txt_ids,
        guidance=one,
        return_dict=False,
    )[0].float()


@functools.cache
def memory_table(preset: str = "dev") -> tuple[ModeMemory, ...]:
    """mode_memory for every mode in MODES (cached: a few seconds on the CPU)."""
    return tuple(mode_memory(precision, low, preset) for precision, low in MODES)


def _gb(n: int) -> str:
    return f"{n / GB:.1f}"


def markdown_table(rows: tuple[ModeMemory, ...] | None = None) -> str:
    """The table for docs/performance.md (GB = 10^9 bytes)."""
    rows = rows or memory_table()
    lines = [
        "| mode | transformer | T5 | CLIP + VAE | resident | peak during load | peak during a step at 1024² "
        "| peak during an edit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t5 = _gb(r.t5) + (" (blocks streamed)" if r.low_memory else "")
        lines.append(
            f"| {r.setting} | {_gb(r.transformer)} | {t5} | {_gb(r.clip + r.vae)} | {_gb(r.resident)} "
            f"| {_gb(r.load_peak)} | {_gb(r.step_peak)} | {_gb(r.peak)} |"
        )
    return "\n".join(lines)


def needed_bytes(row: ModeMemory, safety_checker: bool = True) -> int:
    """What a card must have free for this mode: the peak, the safety checker, FIT_HEADROOM."""
    return row.peak + (SAFETY_CHECKER_BYTES if safety_checker else 0) + int(FIT_HEADROOM)


def _flags(precision: str, low_memory: bool) -> str:
    text = f"--precision {precision} (KONTEXT_PRECISION={precision})"
    if low_memory:
        text += " with --low-memory (KONTEXT_LOW_MEMORY=true)"
    return text


def dev_mode(precision: str, low_memory: bool) -> ModeMemory:
    """The dev model's row of memory_table for one mode."""
    return {(r.precision, r.low_memory): r for r in memory_table()}[(precision, low_memory)]


def check_fits(
    precision: str,
    low_memory: bool,
    available: int,
    memory_of: Callable[[str, bool], ModeMemory] = dev_mode,
    fp8_supported: bool = True,
    safety_checker: bool = True,
) -> str | None:
    """None when the mode fits in `available` bytes; otherwise why not, naming the first setting
    that would fit (the same precision in low-memory mode, then fp8 where the GPU has FP8 tensor
    cores, then fp8-weights, then fp8-weights in low-memory mode), or saying that none does.
    `memory_of(precision, low_memory)` gives a mode's figures (default: the dev model's)."""
    need = needed_bytes(memory_of(precision, low_memory), safety_checker)
    if need <= available:
        return None
    candidates = [(precision, True), ("fp8", False), ("fp8", True), ("fp8-weights", False), ("fp8-weights", True)]
    tried = [(precision, low_memory)]
    hint = None
    for c in candidates:
        if c in tried or (c[0] == "fp8" and not fp8_supported):
            continue
        tried.append(c)
        c_need = needed_bytes(memory_of(*c), safety_checker)
        if c_need <= available:
            hint = f"{_flags(*c)} fits (about {c_need / GB:.1f} GB)"
            break
    if hint is None:
        smallest = min(needed_bytes(memory_of(*c), safety_checker) for c in tried)
        hint = f"no mode fits this GPU (the smallest needs about {smallest / GB:.1f} GB)"
    return (
        f"{_flags(precision, low_memory)} needs about {need / GB:.1f} GB on the GPU at peak, "
        f"and {available / GB:.1f} GB is free: {hint}"
    )


def available_bytes(device: torch.device) -> int:
    """Bytes this process can still use on a CUDA device: what is free plus what it holds."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m kontext_engine.memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="the table for docs/performance.md")
    ap.add_argument("--preset", default="dev", choices=sorted(PRESETS))
    args = ap.parse_args(argv)
    rows = memory_table(args.preset)
    if args.markdown:
        print(markdown_table(rows))
        return
    for r in rows:
        print(
            f"{r.setting:26} resident {_gb(r.resident):>5} GB  load {_gb(r.load_peak):>5}  text {_gb(r.text_peak):>5}  "
            f"vae enc {_gb(r.vae_encode_peak):>5}  step {_gb(r.step_peak):>5}  vae dec {_gb(r.vae_decode_peak):>5}"
        )


if __name__ == "__main__":
    main()
