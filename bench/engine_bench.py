"""Engine benchmark: text encoding, VAE encode, one transformer step, VAE decode, end to end, peak memory.

    python bench/engine_bench.py                               # tiny model, CPU (never rots)
    python bench/engine_bench.py --preset dev --device cuda    # full FLUX.1 Kontext [dev] shapes, random weights
    python bench/engine_bench.py --model-dir /models/FLUX.1-Kontext-dev --device cuda

Random weights in the full configuration cost exactly what the real ones cost (PERFORMANCE.md).
The unit of work: a 1024×1024 output from a ~1 MP input, batch 1. Caches are off, so every run
does all the work. Prints a Markdown table for docs/performance.md, with device, date and versions.
"""

import argparse
import datetime
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

import diffusers
import numpy as np
import torch
import transformers
from diffusers import AutoencoderKL, FluxTransformer2DModel
from transformers import CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

from kontext_engine import sampler
from kontext_engine.configs import PRESETS, SCHEDULER_CONFIG
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.loading import KontextModel, load_model
from kontext_engine.speed import accelerate, model_dtype, resolve_precision
from kontext_engine.tiny import clip_config, write_clip_tokenizer, write_t5_tokenizer

# FLOPs of one transformer step at 1024² (PERFORMANCE.md): linear layers + attention.
DEV_STEP_TFLOP = 165.0


def random_model(preset_name: str, device: torch.device, dtype: torch.dtype) -> KontextModel:
    """The preset's architecture with random weights, built directly in `dtype` on `device`.
    Token ids come from the tiny tokenizers: the sequence lengths (77, 512), not the ids, set the cost."""
    preset = PRESETS[preset_name]
    tok_dir = Path(tempfile.mkdtemp(prefix="kontext-bench-"))
    clip_vocab = write_clip_tokenizer(tok_dir / "tokenizer")
    t5_vocab = write_t5_tokenizer(tok_dir / "tokenizer_2")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel(**preset.transformer)
            vae = AutoencoderKL(**preset.vae)
            clip = CLIPTextModel(clip_config(preset.clip, clip_vocab))
            t5 = T5EncoderModel(T5Config(**{"vocab_size": t5_vocab, **preset.t5}))
    finally:
        torch.set_default_dtype(previous)
    for part in (transformer, vae, clip, t5):
        part.eval().requires_grad_(False)
    return KontextModel(
        transformer=transformer,
        vae=vae,
        clip=clip,
        clip_tokenizer=CLIPTokenizer.from_pretrained(tok_dir / "tokenizer"),
        t5=t5,
        t5_tokenizer=T5TokenizerFast.from_pretrained(tok_dir / "tokenizer_2"),
        scheduler_config=SCHEDULER_CONFIG,
        variant=preset_name,
        transformer_source="diffusers",
        device=device,
        dtype=dtype,
    )


def timed(device: torch.device, fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Seconds per call; CUDA is synchronised around each call so the GPU work is counted."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, help="real weights; otherwise random weights of --preset")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp8", "fp8-weights"], default="auto", help="as the engine's"
    )
    ap.add_argument("--compile", action="store_true", help="regional torch.compile of the transformer blocks")
    ap.add_argument("--fast", action="store_true", help="fast mode for the end-to-end runs")
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--runs", type=int, default=3, help="timed end-to-end runs (component timings use 3× as many)")
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    dtype = model_dtype(precision)
    t = time.perf_counter()
    model = load_model(args.model_dir, device, dtype) if args.model_dir else random_model(args.preset, device, dtype)
    report = accelerate(model, precision, args.compile, None)
    load_s = time.perf_counter() - t
    editor = Editor(model, safety=None, prompt_cache_size=0, condition_cache_size=0)  # caches off: all work, every run
    rng = np.random.default_rng(0)
    image = (rng.random((1024, 1024, 3)) * 255).astype(np.uint8)  # 1 MP in, 1:1 → 1024×1024 out
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    n = args.runs * 3
    text = timed(device, lambda: editor.encode_prompt("make the sky purple"), n, args.warmup)
    vae_enc = timed(device, lambda: editor.encode_condition(image), n, args.warmup)
    cond, clh, clw, _ = editor.encode_condition(image)
    pooled, txt, _ = editor.encode_prompt("make the sky purple")
    lh, lw = sampler.latent_grid(1024, 1024)
    x = sampler.pack(sampler.draw_noise([0], lh, lw)).to(device)
    ids = torch.cat([sampler.position_ids(lh, lw, 0), sampler.position_ids(clh, clw, 1)]).to(device, dtype)
    txt_ids = torch.zeros(txt.shape[1], 3, device=device, dtype=dtype)
    one_step = sampler.schedule(1, x.shape[1], SCHEDULER_CONFIG).to(device)
    step = timed(
        device,
        lambda: sampler.denoise(model.transformer, x, cond, txt, pooled, ids, txt_ids, one_step, 2.5),
        n,
        args.warmup,
    )
    decode = timed(device, lambda: editor.decode(x, lh, lw), n, args.warmup)
    req = EditRequest(image, "make the sky purple", "1:1", args.steps, 2.5, (0,), fast=args.fast)
    e2e = timed(device, lambda: editor.edit(req), args.runs, args.warmup)

    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB (GPU, max allocated)"
        name = torch.cuda.get_device_name(device)
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS)"
        name = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    med = statistics.median
    tokens = x.shape[1] + cond.shape[1] + txt.shape[1]
    what = str(args.model_dir) if args.model_dir else f"{args.preset} preset, random weights"
    mode = report.precision + (" compiled" if report.compiled else " eager") + (" fast" if args.fast else "")
    print(f"## {what} · {name} · {mode} · {datetime.date.today().isoformat()}")
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")
    print(f"1024×1024 out, ~1 MP in, batch 1, {args.steps} steps, {tokens} tokens per step; load {load_s:.1f} s\n")
    print("| measure | median | min | max |\n|---|---|---|---|")
    for label, xs in (
        ("text encoding (CLIP + T5)", text),
        ("VAE encode", vae_enc),
        ("one transformer step", step),
        ("VAE decode", decode),
        (f"end to end, {args.steps} steps", e2e),
    ):
        print(f"| {label} | {med(xs) * 1000:.1f} ms | {min(xs) * 1000:.1f} ms | {max(xs) * 1000:.1f} ms |")
    p90 = sorted(e2e)[max(0, round(0.9 * len(e2e)) - 1)]
    print(f"\nend to end p50 {med(e2e):.2f} s, p90 {p90:.2f} s; peak memory: {peak}")
    if args.preset == "dev" or args.model_dir:
        print(
            f"achieved: {DEV_STEP_TFLOP / med(step):.0f} TFLOP/s per step (against the {DEV_STEP_TFLOP:.0f} TFLOP floor)"
        )
    print(f"images/hour at this latency: {3600 / med(e2e):.0f}")


if __name__ == "__main__":
    main()
