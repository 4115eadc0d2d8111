"""The GPU suite (bench/gpu_suite.py) runs at tiny scale on the CPU, so it never rots between GPU
runs: every row of its table is there, with figures where the CPU can give them and the reason
where it cannot."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = ["GPU", "compute capability", "driver", "torch", "CUDA", "cuDNN", "attention"]
CHECKS = [
    "tiny on the device vs CPU float32",
    "fp8 vs bf16 velocity, 3 steps, AdaLN modulation in bf16",
    "fp8 vs bf16 velocity, 3 steps, AdaLN modulation quantized",
    "no recompilation: 2 buckets, batch 1 → 2",
]
MODES = [
    "bf16 eager",
    "bf16 compiled",
    "fp8 eager",
    "fp8 compiled",
    "fp8 compiled + fast",
    "fp8-weights",
    "low-memory fp8",
]


def test_the_gpu_suite_runs_at_tiny_scale_on_the_cpu(tmp_path: Path) -> None:
    suite = [sys.executable, str(ROOT / "bench" / "gpu_suite.py")]
    out = subprocess.run(
        [*suite, "--preset", "tiny", "--device", "cpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in out.splitlines() if line.startswith("| ")}
    for name in [*ENVIRONMENT, *CHECKS, *MODES]:
        assert name in rows, f"no table row {name!r}"
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert (tmp_path / "gpu_suite.md").read_text().count("\n| ") == len(ENVIRONMENT) + len(CHECKS) + len(MODES) + 1
    for key in ("environment", "correctness", "modes", "skipped", "wall_s", "preset", "device", "steps", "date"):
        assert key in report, key
    for key in ("gpu", "capability", "driver", "torch", "cuda", "cudnn", "attention", "python", "diffusers"):
        assert key in report["environment"], key
    checks = {c["name"]: c for c in report["correctness"]}
    assert list(checks) == CHECKS
    for c in checks.values():  # all four run on the CPU too (the recompile check with dynamo's eager)
        assert c["skipped"] is None and c["ok"] is True, c
    modes = {m["name"]: m for m in report["modes"]}
    assert list(modes) == MODES
    for name in ("bf16 eager", "fp8 eager"):
        m = modes[name]
        assert m["skipped"] is None and m["runs"] >= 1, m
        for key in ("load_s", "warmup_s", "step_ms", "e2e_p50_s", "e2e_p90_s"):
            assert m[key] is not None and m[key] > 0, (name, key)
        assert m["e2e_p90_s"] >= m["e2e_p50_s"]
        assert m["peak_alloc_gb"] is None  # CUDA only
    for name in ("bf16 compiled", "fp8 compiled", "fp8 compiled + fast", "fp8-weights", "low-memory fp8"):
        assert modes[name]["skipped"], name  # not possible on the CPU: the reason is given
        assert f"| {name} | skipped: " in rows[name]
