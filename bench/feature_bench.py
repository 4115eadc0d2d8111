"""What each request feature costs per denoising step: LoRAs (0, 1, 4), references (1, 4 condition
images) and true CFG, measured through the Editor.

    python bench/feature_bench.py                              # tiny preset, CPU
    python bench/feature_bench.py --runs 5 --steps 8
    python bench/feature_bench.py --preset dev --device cuda   # full FLUX.1 Kontext [dev] shapes, random weights

Every case is one edit at 1024×1024 from a 1 MP input (4096 target tokens + 512 text). A step is
the time between two of the Editor's step callbacks (transformer, LoRA hooks, guidance and the
scheduler; no text encoding, VAE or preview), so the first step and everything around the loop
are left out. The cases run round-robin, one edit each per round, so a machine shared with other
work slows every case alike; the table gives the median over all steps of all rounds. The LoRAs
are diffusers-format files on every linear layer of the transformer, random, rank --rank. Caches
are off: the VAE encode column is every condition image's encoding, every run. Beside wall time
each step's CPU time (the process's, all threads) is given: on a shared machine wall time includes
waiting for a core, CPU time much less so. Prints a Markdown table for docs/performance.md, with
device, date, versions and the load average.
"""

import argparse
import datetime
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import diffusers
import numpy as np
import torch
import transformers
from engine_bench import random_model
from safetensors.torch import save_file

from kontext_engine import conditioning, lora
from kontext_engine.configs import PRESETS
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.lora import LoraSpec
from kontext_engine.speed import accelerate, model_dtype, resolve_precision

PROMPT = "make the sky purple"


@dataclass
class Case:
    label: str
    request: EditRequest
    editor: Editor
    steps_ms: list[float] = field(default_factory=list)  # every step of every timed run, wall
    steps_cpu_ms: list[float] = field(default_factory=list)  # the same steps, the process's CPU time
    vae_encode_ms: list[float] = field(default_factory=list)
    condition_tokens: int = 0


def write_loras(directory: Path, transformer: torch.nn.Module, count: int, rank: int) -> list[str]:
    """`count` random diffusers-format LoRAs covering every linear layer; their names."""
    shapes = lora.layer_shapes(transformer)
    g = torch.Generator().manual_seed(0)
    names = []
    for i in range(count):
        tensors = {}
        for name, (n_in, n_out) in shapes.items():
            tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, n_in, generator=g) * 0.01
            tensors[f"transformer.{name}.lora_B.weight"] = torch.randn(n_out, rank, generator=g) * 0.01
        save_file(tensors, str(directory / f"bench{i}.safetensors"))
        names.append(f"bench{i}")
    return names


def run_once(device: torch.device, case: Case, keep: bool) -> None:
    stamps: list[tuple[float, float]] = []

    def on_step(step: int, total: int, preview: object) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append((time.perf_counter(), time.process_time()))

    result = case.editor.edit(case.request, on_step)
    if keep:
        pairs = list(itertools.pairwise(stamps))
        case.steps_ms += [(b[0] - a[0]) * 1000 for a, b in pairs]
        case.steps_cpu_ms += [(b[1] - a[1]) * 1000 for a, b in pairs]
        case.vae_encode_ms.append(result.timings_ms["vae_encode"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp8", "fp8-weights"], default="auto")
    ap.add_argument("--steps", type=int, default=6, help="steps per edit (each edit gives steps − 1 step timings)")
    ap.add_argument("--runs", type=int, default=3, help="timed rounds (one edit of every case each)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (LoRA files load in the first)")
    ap.add_argument("--rank", type=int, default=4, help="rank of the generated LoRAs")
    ap.add_argument("--true-cfg-scale", type=float, default=4.0)
    args = ap.parse_args()

    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    model = random_model(args.preset, device, model_dtype(precision))
    report = accelerate(model, precision, False, None)
    lora_dir = Path(tempfile.mkdtemp(prefix="kontext-feature-bench-"))
    names = write_loras(lora_dir, model.transformer, 4, args.rank)

    def editor(max_tokens: int = conditioning.DEFAULT_MAX_CONDITION_TOKENS) -> Editor:
        return Editor(model, None, 0, 0, max_condition_tokens=max_tokens, lora_dir=lora_dir)  # caches off

    default, uncapped = editor(), editor(4 * 4096)
    rng = np.random.default_rng(0)
    image, *refs = [(rng.random((1024, 1024, 3)) * 255).astype(np.uint8) for _ in range(4)]
    base = EditRequest(image, PROMPT, "1:1", args.steps, 2.5, (0,))

    def with_(**kw: object) -> EditRequest:
        return replace(base, **kw)  # type: ignore[arg-type]

    cases = [
        Case("baseline: 1 image, no LoRA, no true CFG", base, default),
        Case("1 LoRA", with_(loras=(LoraSpec(names[0], 1.0),)), default),
        Case("4 LoRAs", with_(loras=tuple(LoraSpec(n, 1.0) for n in names)), default),
        Case("4 images (input + 3 references), default cap", with_(references=tuple(refs)), default),
        Case("4 images, cap raised to 16384 (none scaled down)", with_(references=tuple(refs)), uncapped),
        Case(
            f"true CFG (true_cfg_scale {args.true_cfg_scale:g}, negative prompt)",
            with_(negative_prompt="blurry", true_cfg_scale=args.true_cfg_scale),
            default,
        ),
    ]
    for c in cases:
        sizes = conditioning.encode_sizes(c.request, c.editor.max_condition_tokens)
        c.condition_tokens = sum(conditioning.tokens(w, h) for w, h in sizes)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    for r in range(args.warmup + args.runs):
        for c in cases:
            run_once(device, c, keep=r >= args.warmup)
    wall_s = time.perf_counter() - t0
    load_after = os.getloadavg()

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    med = statistics.median
    text_tokens = 512
    target = 4096
    baseline, baseline_cpu = med(cases[0].steps_ms), med(cases[0].steps_cpu_ms)
    print(
        f"## {args.preset} preset, random weights · {name} · {report.precision} eager · {datetime.date.today().isoformat()}"
    )
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")
    print(
        f"1024×1024 out from 1 MP inputs, batch 1, {args.steps} steps an edit, {args.runs} timed rounds "
        f"(+{args.warmup} warm-up): {len(cases[0].steps_ms)} step timings a case; LoRA rank {args.rank}; "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"({wall_s:.0f} s)\n"
    )
    print(
        "| case | tokens per step | ms per step (wall): median | min | max | × baseline | "
        "CPU ms per step: median | × baseline | VAE encode (ms, median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        xs, cpu = c.steps_ms, c.steps_cpu_ms
        tokens = target + c.condition_tokens + text_tokens
        print(
            f"| {c.label} | {tokens} | {med(xs):.1f} | {min(xs):.1f} | {max(xs):.1f} | {med(xs) / baseline:.2f} | "
            f"{med(cpu):.1f} | {med(cpu) / baseline_cpu:.2f} | {med(c.vae_encode_ms):.0f} |"
        )


if __name__ == "__main__":
    main()
