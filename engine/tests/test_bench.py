"""The engine benchmark runs at tiny scale on CPU, so it never rots between GPU runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_benchmark_runs_at_tiny_scale() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "engine_bench.py"), "--steps", "2", "--runs", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for measure in ("text encoding", "VAE encode", "one transformer step", "VAE decode", "end to end, 2 steps"):
        assert f"| {measure}" in out
    assert "peak memory:" in out and "torch " in out and "fp32 eager" in out


def test_the_feature_benchmark_runs_at_tiny_scale() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "feature_bench.py"), "--steps", "2", "--runs", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    for case in (
        "| baseline",
        "| 1 LoRA | 8704",
        "| 4 LoRAs | 8704",
        "| 4 images (input + 3 references)",
        "| true CFG",
    ):
        assert case in out
    assert "load average" in out and "torch " in out and "fp32 eager" in out
