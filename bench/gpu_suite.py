"""The GPU suite: environment, correctness on the device, and every speed mode, in one process.

    python bench/gpu_suite.py                                  # dev model (random weights), CUDA, ≤ 8 min
    python bench/gpu_suite.py --preset tiny --device cpu       # the same script at toy scale (npm test)
    python bench/gpu_suite.py --modes "fp8 compiled,bf16 eager" --runs 5 --out DIR

Random weights in the full `dev` configuration cost what the real weights cost (PERFORMANCE.md).
The unit of work: 1024×1024 out from a 1024×1024 input, 28 steps, batch 1, caches off. Prints one
Markdown table (for docs/performance.md) and writes the same figures to OUT/gpu_suite.json and
OUT/gpu_suite.md, after every row, so a run cut short still leaves what it measured.

- environment: GPU, compute capability, driver, torch, CUDA, cuDNN, attention kernel;
- correctness: the tiny model on the device against float32 on the CPU; FP8 against bf16 (the
  relative error of the velocity over 3 steps), with the AdaLN modulation layers in bf16 and
  quantized; no recompilation after warm-up across two buckets and batch 1 → 2;
- per mode: load, compile/warm-up (as the engine warms up before `ready`), ms per step, s per
  image p50/p90 end to end, TFLOP/s against the 165 TFLOP/step floor, peak allocated/reserved.

A time budget (--budget-s) keeps the whole run inside 8 minutes on one H100/H200: the modes run in
order of importance and whatever would not fit is skipped with the reason printed. Compilation
starts from an empty cache (a first start) unless --compile-cache names one. Works with Python
≥ 3.11 and torch ≥ 2.11 (no newer-only APIs without a fallback).
"""

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "engine"))
sys.path.insert(0, str(BENCH))

# A cold compile cache unless one is named: set before torch's inductor reads it.
_cache_arg = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--compile-cache=")), None)
if "--compile-cache" in sys.argv[:-1]:
    _cache_arg = sys.argv[sys.argv.index("--compile-cache") + 1]
COMPILE_CACHE = Path(_cache_arg) if _cache_arg else Path(tempfile.mkdtemp(prefix="kontext-suite-inductor-"))
os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(COMPILE_CACHE)

import diffusers  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from engine_bench import DEV_STEP_TFLOP, random_model  # noqa: E402

from kontext_engine import environment, fp8, sampler, speed  # noqa: E402
from kontext_engine.configs import PRESETS  # noqa: E402
from kontext_engine.editor import Editor, EditRequest  # noqa: E402

GB = 1e9
SIDE = 1024
PROMPT = "make the sky purple and add a full moon"


@dataclass(frozen=True)
class ModeSpec:
    name: str
    precision: str
    compiled: bool
    fast: bool = False
    low_memory: bool = False
    shares: str | None = None  # runs on the model another mode loaded (same load and warm-up)


# The table's order; `PRIORITY` is the order they run in, so a tight budget skips the least important.
MODES = [
    ModeSpec("bf16 eager", "bf16", False),
    ModeSpec("bf16 compiled", "bf16", True),
    ModeSpec("fp8 eager", "fp8", False),
    ModeSpec("fp8 compiled", "fp8", True),
    ModeSpec("fp8 compiled + fast", "fp8", True, fast=True, shares="fp8 compiled"),
    ModeSpec("fp8-weights", "fp8-weights", True),
    ModeSpec("low-memory fp8", "fp8", True, low_memory=True),
]
PRIORITY = [
    "fp8 compiled",
    "fp8 compiled + fast",
    "bf16 eager",
    "bf16 compiled",
    "low-memory fp8",
    "fp8-weights",
    "fp8 eager",
]
CHECKS = [
    "tiny on the device vs CPU float32",
    "fp8 vs bf16 velocity, 3 steps, AdaLN modulation in bf16",
    "fp8 vs bf16 velocity, 3 steps, AdaLN modulation quantized",
    "no recompilation: 2 buckets, batch 1 → 2",
]
ENVIRONMENT = ["GPU", "compute capability", "driver", "torch", "CUDA", "cuDNN", "attention"]


@dataclass
class Check:
    name: str
    value: float | None = None
    limit: float | None = None
    ok: bool | None = None
    detail: str = ""
    skipped: str | None = None
    seconds: float | None = None  # wall time of the check


@dataclass
class ModeResult:
    name: str
    precision: str | None = None  # what ran (fp8 falls back to bf16 where its self-check fails)
    compiled: bool | None = None
    skipped: str | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    step_ms: float | None = None
    e2e_p50_s: float | None = None
    e2e_p90_s: float | None = None
    runs: int = 0
    e2e_s: list[float] = field(default_factory=list)
    tflops: float | None = None
    peak_alloc_gb: float | None = None
    peak_reserved_gb: float | None = None
    load_peak_alloc_gb: float | None = None
    predicted_peak_gb: float | None = None  # kontext_engine.memory's meta-device count, where it exists
    seconds: float | None = None  # wall time of the mode, all included
    note: str = ""


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.start = time.perf_counter()
        self.deadline = self.start + args.budget_s
        self.env: dict[str, Any] = {}
        self.checks: dict[str, Check] = {}
        self.modes: dict[str, ModeResult] = {}
        self.skipped: list[str] = []
        self.estimates = {"load": 30.0 if args.preset == "dev" else 2.0, "compile": 120.0, "e2e": None}
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)

    # -- bookkeeping -----------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def skip(self, what: str, why: str) -> str:
        self.skipped.append(f"{what}: {why}")
        print(f"skipped {what}: {why}", flush=True)
        return why

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def free(self) -> None:
        torch._dynamo.reset()
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peaks(self) -> tuple[float | None, float | None]:
        if not self.cuda:
            return None, None
        return (
            torch.cuda.max_memory_allocated(self.device) / GB,
            torch.cuda.max_memory_reserved(self.device) / GB,
        )

    def report(self) -> dict[str, Any]:
        return {
            "suite": "kontext gpu_suite",
            "version": 1,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "preset": self.args.preset,
            "device": str(self.device),
            "size": f"{SIDE}x{SIDE}",
            "steps": self.args.steps,
            "runs": self.args.runs,
            "budget_s": self.args.budget_s,
            "compile_cache": str(COMPILE_CACHE) + ("" if self.args.compile_cache else " (fresh: a first start)"),
            "environment": self.env,
            "correctness": [asdict(self.checks.get(n, Check(n, skipped="not run"))) for n in CHECKS],
            "modes": [asdict(self.modes.get(m.name, ModeResult(m.name, skipped="not run"))) for m in MODES],
            "skipped": self.skipped,
            "wall_s": round(time.perf_counter() - self.start, 1),
        }

    def save(self) -> None:
        report = self.report()
        (self.out / "gpu_suite.json").write_text(json.dumps(report, indent=2) + "\n")
        (self.out / "gpu_suite.md").write_text(markdown(report) + "\n")

    # -- environment -----------------------------------------------------------------------
    def environment(self) -> None:
        facts = environment.describe(self.device)
        attention = "unknown"
        with contextlib.suppress(Exception):
            cfg = PRESETS[self.args.preset].transformer
            dtype = torch.bfloat16 if self.cuda else torch.float32
            attention = speed.attention_backend(
                self.device, dtype, cfg["num_attention_heads"], cfg["attention_head_dim"], 8704
            )
            # Every non-square bucket's sequence is not a multiple of 128 (e.g. 16:9: 4089 + 4089 + 512).
            odd = speed.attention_backend(
                self.device, dtype, cfg["num_attention_heads"], cfg["attention_head_dim"], 8690
            )
            if odd != attention:
                attention += f" (8690 tokens: {odd})"
        self.env = {
            "gpu": facts["gpu"]
            or f"none: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "capability": facts["capability"],
            "driver": facts["driver"],
            "torch": torch.__version__,
            "cuda": facts["cuda"],
            "cudnn": facts["cudnn"],
            "attention": attention,
            "python": platform.python_version(),
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
        }
        print(
            f"environment: {self.env['gpu']} (capability {self.env['capability']}), driver {self.env['driver']}, "
            f"torch {self.env['torch']}, CUDA {self.env['cuda']}, cuDNN {self.env['cudnn']}, attention {attention}; "
            f"python {self.env['python']}, diffusers {self.env['diffusers']}, transformers {self.env['transformers']}",
            flush=True,
        )

    # -- correctness -----------------------------------------------------------------------
    def check_tiny_on_device(self) -> None:
        """The tiny transformer's velocity in bf16 on the device against float32 on the CPU. The
        tolerance is bf16's own: twice what bf16 on the CPU is off by (at least 1e-2). On a
        CPU-only machine: bf16 against float32, both on the CPU, against a fixed 0.1."""
        name = CHECKS[0]
        from diffusers import FluxTransformer2DModel

        cfg = PRESETS["tiny"].transformer
        torch.manual_seed(0)
        ref_model = FluxTransformer2DModel(**cfg).eval()
        inputs = tiny_inputs(ref_model.config)

        def velocity(device: torch.device) -> torch.Tensor:
            with torch.device(device):
                model = FluxTransformer2DModel(**cfg).eval()
            model.load_state_dict(ref_model.state_dict())  # the same weights, cast to bf16
            model = model.bfloat16()
            moved = {
                k: v.to(device, torch.bfloat16 if v.is_floating_point() and k != "guidance" else v.dtype)
                for k, v in inputs.items()
            }
            with torch.no_grad(), speed.fastest_attention(device):
                return model(**moved, return_dict=False)[0].float().cpu()

        with torch.no_grad():
            ref = ref_model(**inputs, return_dict=False)[0].float()
        cpu_err = rel_error(velocity(torch.device("cpu")), ref)
        if not self.cuda:
            ok = cpu_err <= 0.1
            self.checks[name] = Check(name, cpu_err, 0.1, ok, "no GPU: cpu bf16 vs cpu float32")
            return
        err = rel_error(velocity(self.device), ref)
        limit = max(2 * cpu_err, 0.01)
        detail = f"{self.device} bf16 vs cpu float32; cpu bf16 itself is off by {cpu_err:.3g}"
        self.checks[name] = Check(name, err, limit, err <= limit, detail)

    def check_fp8_velocity(self, editor: Editor) -> None:
        """FP8 against bf16 on the same weights: the velocity's relative error at each of 3 steps,
        first with the AdaLN modulation linears kept in bf16, then with them quantized too (what
        the engine's fp8 mode does: every linear inside the blocks)."""
        names = CHECKS[1], CHECKS[2]
        m = editor.m
        pooled, txt, _ = editor.encode_prompt(PROMPT)
        if self.args.preset == "dev":  # the unit of work: 1024² out, a VAE-encoded 1024² condition
            cond, clh, clw, _ = editor.encode_condition(test_image())
            side = SIDE
        else:  # toy scale: 256² and random condition tokens (the check, not the size, is the point)
            side, clh, clw = 256, 32, 32  # 256 condition tokens on a 32×32 latent grid
            cond = torch.randn(1, 256, 64, generator=torch.Generator().manual_seed(2)).to(m.device, m.dtype)
        lh, lw = sampler.latent_grid(side, side)
        x = sampler.pack(sampler.draw_noise([0], lh, lw)).to(m.device)
        ids = torch.cat([sampler.position_ids(lh, lw, 0), sampler.position_ids(clh, clw, 1)]).to(m.device, m.dtype)
        txt_ids = torch.zeros(txt.shape[1], 3, device=m.device, dtype=m.dtype)
        sigmas = sampler.schedule(3, x.shape[1], m.scheduler_config).to(m.device)

        def velocities() -> list[torch.Tensor]:
            seen: list[torch.Tensor] = []
            hook = m.transformer.register_forward_hook(lambda _m, _i, out: seen.append(out[0].float().cpu()))
            try:
                with speed.fastest_attention(m.device):
                    sampler.denoise(m.transformer, x, cond, txt, pooled, ids, txt_ids, sigmas, 2.5)
            finally:
                hook.remove()
            return seen

        ref = velocities()
        blocks = [*m.transformer.transformer_blocks, *m.transformer.single_transformer_blocks]
        n_rest = sum(quantize_linears(b, modulation=False) for b in blocks)
        errs = [rel_error(v, r) for v, r in zip(velocities(), ref, strict=True)]
        self.checks[names[0]] = Check(
            names[0], max(errs), 0.1, max(errs) <= 0.1, f"per step {fmt_list(errs)}; {n_rest} linears in e4m3"
        )
        n_mod = sum(quantize_linears(b, modulation=True) for b in blocks)
        errs = [rel_error(v, r) for v, r in zip(velocities(), ref, strict=True)]
        self.checks[names[1]] = Check(
            names[1],
            max(errs),
            0.1,
            max(errs) <= 0.1,
            f"per step {fmt_list(errs)}; +{n_mod} modulation linears (the engine's fp8 quantizes them)",
        )

    def check_no_recompile(self, editor: Editor, warmed: bool) -> None:
        """After the engine's warm-up (1024×1024, batch 1 and 2), another bucket (16:9, a sequence
        length that is not a multiple of 128) at batch 1 and 2 must compile nothing."""
        name = CHECKS[3]
        from torch._dynamo.utils import counters

        if not warmed:
            editor.warm_up([(SIDE, SIDE)], (1, 2), steps=1)
        before = counters["stats"]["unique_graphs"]
        other = test_image(1392, 752)
        for seeds in ((3,), (3, 4)):
            editor.edit(EditRequest(other, PROMPT, "match_input_image", 1, 2.5, seeds, True))
        new = counters["stats"]["unique_graphs"] - before
        self.checks[name] = Check(
            name, float(new), 0.0, new == 0, f"{before} graphs after warm-up, {new} new at 1392x752 batch 1 and 2"
        )

    def check_no_recompile_cpu(self) -> None:
        """On the CPU: the tiny model compiled with dynamo's `eager` backend (no code generation),
        the same graphs and guards as inductor's."""
        model = self.build(False, "fp32")
        speed.accelerate(model, "fp32", False, None)
        speed.compile_transformer(model.transformer, model.device, None, backend="eager")
        editor = Editor(model, None, 0, 0)
        stub_vae(editor)  # the VAE is not compiled: only the time it would cost on the CPU is saved
        self.check_no_recompile(editor, warmed=False)
        del model
        self.free()

    # -- modes -------------------------------------------------------------------------------
    def build(self, low_memory: bool, precision: str) -> Any:
        dtype = speed.model_dtype(precision if precision != "auto" else "bf16")
        torch.manual_seed(0)
        model = random_model(self.args.preset, self.device, dtype)
        if low_memory:
            model.offload = True  # accelerate keeps T5's blocks on the host and streams them in
        return model

    def mode_unavailable(self, spec: ModeSpec) -> str | None:
        if spec.precision not in typing.get_args(getattr(speed, "Precision", typing.Literal["bf16"])):
            return f"precision {spec.precision} is not in this engine yet (speed.Precision)"
        if spec.low_memory and not self.cuda:
            return "low-memory mode streams to a GPU"
        if spec.compiled and not self.cuda:
            return "compiled modes need CUDA (the engine compiles only there; the CPU check above uses dynamo's eager)"
        if spec.precision == "fp8" and self.cuda and not fp8.fp8_matmul_supported(self.device):
            return "no FP8 tensor cores here (compute capability < 8.9)"
        return None

    def run_mode(self, spec: ModeSpec, state: dict[str, Any]) -> None:
        result = ModeResult(spec.name)
        self.modes[spec.name] = result
        why = self.mode_unavailable(spec)
        if why is None and spec.shares and spec.shares not in state:
            why = f"needs {spec.shares}, which did not run"
        if why is None and not spec.shares:
            need = self.estimates["load"] + (self.estimates["compile"] if spec.compiled else 0)
            need += 2 * (self.estimates["e2e"] or (10.0 if self.args.preset == "dev" else 2.0))
            if self.left() < need:
                why = f"budget (needs about {need:.0f} s, {max(self.left(), 0):.0f} s left)"
        if why is not None:
            result.skipped = self.skip(spec.name, why)
            return
        print(f"mode {spec.name} …", flush=True)
        started = time.perf_counter()
        try:
            if spec.shares:
                editor, report = state[spec.shares]
                result.note = f"load and warm-up: {spec.shares}'s"
            else:
                self.free()
                t0 = time.perf_counter()
                model = self.build(spec.low_memory, spec.precision)
                report = speed.accelerate(model, spec.precision, spec.compiled, COMPILE_CACHE)
                self.sync()
                result.load_s = time.perf_counter() - t0
                result.load_peak_alloc_gb = self.peaks()[0]
                self.estimates["load"] = result.load_s
                if self.cuda:
                    torch.cuda.reset_peak_memory_stats(self.device)
                editor = Editor(model, None, prompt_cache_size=0, condition_cache_size=0)  # every run does all the work
                t0 = time.perf_counter()
                editor.warm_up([(SIDE, SIDE)], (1, 2) if report.compiled else (1,), steps=2)
                self.sync()
                result.warmup_s = time.perf_counter() - t0
                if report.compiled:
                    self.estimates["compile"] = result.warmup_s
                state[spec.name] = (editor, report)
            result.precision, result.compiled = report.precision, report.compiled
            if report.precision != spec.precision:
                result.note = f"ran {report.precision}: {report.fp8_fallback_reason}"
            self.time_runs(spec, editor, result)
            result.peak_alloc_gb, result.peak_reserved_gb = self.peaks()
            result.predicted_peak_gb = predicted_peak(self.args.preset, report.precision, spec.low_memory)
            if spec.name == "fp8 compiled" and self.cuda:
                self.guard(CHECKS[3], lambda: self.check_no_recompile(editor, warmed=True))
            if spec.name == "bf16 eager":
                self.guard(CHECKS[1], lambda: self.check_fp8_velocity(editor))
        except Exception as e:  # one mode failing (out of memory, a missing kernel) must not end the suite
            traceback.print_exc()
            result.skipped = self.skip(spec.name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        finally:
            result.seconds = round(time.perf_counter() - started, 1)
            self.save()

    def time_runs(self, spec: ModeSpec, editor: Editor, result: ModeResult) -> None:
        image = test_image()
        req = EditRequest(image, PROMPT, "match_input_image", self.args.steps, 2.5, (0,), True, spec.fast)
        passes = sum(sampler.fast_plan(self.args.steps)) if spec.fast else self.args.steps
        remaining = [m for m in PRIORITY if m not in self.modes]
        share = max(self.left() / (len(remaining) + 1), 0.0)
        denoise: list[float] = []
        t_end = time.perf_counter() + share
        while result.runs < self.args.runs:
            self.sync()
            t0 = time.perf_counter()
            out = editor.edit(req)
            self.sync()
            result.e2e_s.append(time.perf_counter() - t0)
            denoise.append(out.timings_ms["denoise"] / 1000)
            result.runs += 1
            self.estimates["e2e"] = result.e2e_s[0]
            if result.runs >= 2 and time.perf_counter() + result.e2e_s[-1] > t_end:
                break
        if result.runs < self.args.runs:
            result.note = (result.note + "; " if result.note else "") + f"{result.runs} runs (budget)"
        result.e2e_p50_s = statistics.median(result.e2e_s)
        result.e2e_p90_s = percentile(result.e2e_s, 0.9)
        step_s = statistics.median(denoise) / passes
        result.step_ms = step_s * 1000
        if self.args.preset == "dev":
            result.tflops = DEV_STEP_TFLOP / step_s
        if spec.fast:
            result.note = (
                result.note + "; " if result.note else ""
            ) + f"{passes} transformer passes of {self.args.steps}"

    def guard(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:
            traceback.print_exc()
            why = self.skip(name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            self.checks[name] = Check(name, skipped=why)
        if name in self.checks:
            self.checks[name].seconds = round(time.perf_counter() - t0, 1)
        self.save()

    def run(self) -> dict[str, Any]:
        self.environment()
        self.save()
        self.guard(CHECKS[0], self.check_tiny_on_device)
        if not self.cuda:
            self.guard(CHECKS[3], self.check_no_recompile_cpu)
        wanted = set(self.args.modes.split(",")) if self.args.modes else {m.name for m in MODES}
        state: dict[str, Any] = {}
        by_name = {m.name: m for m in MODES}
        for i, name in enumerate(PRIORITY):
            if name not in wanted:
                self.modes[name] = ModeResult(name, skipped=self.skip(name, "not asked for (--modes)"))
            else:
                self.run_mode(by_name[name], state)
            later = {by_name[n].shares for n in PRIORITY[i + 1 :] if n in wanted}
            for kept in [k for k in state if k not in later]:
                del state[kept]  # its model leaves the GPU before the next mode loads
        state.clear()
        self.free()
        for name in CHECKS:
            if name not in self.checks:
                why = "runs with bf16 eager" if name in CHECKS[1:3] else "runs with fp8 compiled"
                self.checks[name] = Check(name, skipped=self.skip(name, f"{why}, which did not run"))
        self.save()
        return self.report()


# -- helpers ----------------------------------------------------------------------------------
def tiny_inputs(config: Any, target: int = 256, condition: int = 256) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = target + condition
    return {
        "hidden_states": torch.randn(1, n, config.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(1, 512, config.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=g),
        "timestep": torch.tensor([0.7]),
        "guidance": torch.tensor([2.5]),
        "img_ids": torch.cat([sampler.position_ids(32, 32, 0), sampler.position_ids(32, 32, 1)]),
        "txt_ids": torch.zeros(512, 3),
    }


def stub_vae(editor: Editor) -> None:
    """Random condition tokens instead of the VAE encode and a blank decode (same shapes)."""
    from kontext_engine.resolution import condition_size

    def encode_condition(image: np.ndarray, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, int, int, bool]:
        lh, lw = sampler.latent_grid(*(size or condition_size(image.shape[1], image.shape[0])))
        return torch.randn(1, lh * lw // 4, 64).to(editor.m.device, editor.m.dtype), lh, lw, False

    editor.encode_condition = encode_condition  # type: ignore[method-assign]
    editor.decode = lambda x, lh, lw: torch.zeros(x.shape[0], 3, lh * 8, lw * 8, device=x.device)  # type: ignore[method-assign]


def test_image(width: int = SIDE, height: int = SIDE) -> np.ndarray:
    return (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.float() - ref.float()).norm() / ref.float().norm().clamp(min=1e-30))


def is_modulation(name: str) -> bool:
    """The AdaLN modulation linears: norm1.linear, norm1_context.linear (double), norm.linear (single)."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-1] == "linear" and parts[-2].startswith("norm")


def quantize_linears(block: torch.nn.Module, modulation: bool) -> int:
    """Swap a block's nn.Linear layers for the engine's Float8Linear: the AdaLN modulation linears
    only (modulation=True) or every other one (False)."""
    swapped = 0
    for name, child in list(block.named_modules()):
        if not isinstance(child, torch.nn.Linear) or is_modulation(name) != modulation:
            continue
        if child.in_features % 16 or child.out_features % 16:
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = block.get_submodule(parent_name) if parent_name else block
        setattr(parent, leaf, fp8.Float8Linear(child))
        swapped += 1
    return swapped


def predicted_peak(preset: str, precision: str, low_memory: bool) -> float | None:
    """The engine's own meta-device accounting (kontext_engine.memory), where it exists."""
    try:
        from kontext_engine import memory

        row = memory.mode_memory(precision, low_memory, preset)
        return row.peak / GB
    except Exception:
        return None


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, round(q * len(s) + 0.5) - 1))]


def fmt_list(xs: list[float]) -> str:
    return ", ".join(f"{x:.2e}" for x in xs)


def _f(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """One table: the environment, the checks, then the modes (docs/performance.md)."""
    env = report["environment"]
    head = (
        f"`{report['command']}` · {report['preset']} preset, random weights · {report['device']} · "
        f"{report['size']}, {report['steps']} steps, batch 1 · {report['date'][:10]} · "
        f"python {env.get('python')}, diffusers {env.get('diffusers')}, transformers {env.get('transformers')} · "
        f"wall {report['wall_s']} s\n\n"
    )
    lines = [
        "| row | result | load s | warm-up s | ms/step | s/image p50 | s/image p90 | TFLOP/s | peak alloc GB | peak reserved GB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    blank = " | " * 8
    keys = ["gpu", "capability", "driver", "torch", "cuda", "cudnn", "attention"]
    for label, key in zip(ENVIRONMENT, keys, strict=True):
        lines.append(f"| {label} | {env.get(key) or 'unknown'}{blank}|")
    for c in report["correctness"]:
        if c["skipped"]:
            result = f"skipped: {c['skipped']}"
        else:
            verdict = "ok" if c["ok"] else "FAIL"
            result = f"{verdict}: {c['value']:.3g} (limit {c['limit']:g}); {c['detail']}"
        lines.append(f"| {c['name']} | {result}{blank}|")
    for m in report["modes"]:
        if m["skipped"]:
            lines.append(f"| {m['name']} | skipped: {m['skipped']}{blank}|")
            continue
        result = "ok" + (f" ({m['precision']})" if m["precision"] else "")
        if m["predicted_peak_gb"] is not None and report["device"].startswith("cuda"):
            result += f"; predicted peak {m['predicted_peak_gb']:.1f} GB"
        if m["note"]:
            result += f"; {m['note']}"
        cells = [
            _f(m["load_s"]),
            _f(m["warmup_s"]),
            _f(m["step_ms"]),
            _f(m["e2e_p50_s"], 2),
            _f(m["e2e_p90_s"], 2),
            _f(m["tflops"], 0),
            _f(m["peak_alloc_gb"]),
            _f(m["peak_reserved_gb"]),
        ]
        lines.append(f"| {m['name']} | {result} (n={m['runs']}) | " + " | ".join(cells) + " |")
    # The table gives every reason; below it, what the budget or a failure cost.
    tail = "".join(f"\nskipped {s}" for s in report["skipped"] if "budget" in s or "failed" in s)
    return head + "\n".join(lines) + ("\n" + tail if tail else "")


@contextlib.contextmanager
def engine_logs() -> Iterator[None]:
    """The engine's own progress lines (warm-up and compilation), libraries' warnings only."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("kontext_engine").setLevel(logging.INFO)
    yield


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="dev")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, help="steps per image (default 28; 2 for the tiny preset)")
    ap.add_argument("--runs", type=int, help="timed end-to-end runs per mode, at most (default 5; 2 for tiny)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="stop starting new work after this (default 450)")
    ap.add_argument("--modes", help="comma-separated subset of: " + ", ".join(m.name for m in MODES))
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "kontext-gpu-suite"), help="output dir")
    ap.add_argument("--compile-cache", help="inductor cache dir (default: a fresh one: compile times of a first start)")
    args = ap.parse_args(argv)
    tiny = args.preset == "tiny"
    args.steps = args.steps or (2 if tiny else 28)
    args.runs = args.runs or (2 if tiny else 5)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        facts = environment.cuda_facts()
        print(environment.no_cuda_message(facts, args.preset), file=sys.stderr)
        return 2
    if torch.device(args.device).type == "cuda" and torch.device(args.device).index is not None:
        torch.cuda.set_device(torch.device(args.device))
    with engine_logs():
        report = Suite(args).run()
    print()
    print(markdown(report))
    print(f"\nwrote {Path(args.out) / 'gpu_suite.json'} and gpu_suite.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
