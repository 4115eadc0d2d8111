"""What `output_resolution: input` costs on the host: compose_full_resolution at 12 MP.

    python bench/preserve_bench.py              # 4000×3000, small and large edit, 5 runs each
    python bench/preserve_bench.py --runs 9 --size 4032x3024

A synthetic photo, resized to its bucket as the engine does, and an output that changes a known
region (a small object, about 6 % of the frame; a new background on 45 %; a style change on all of
it). Prints ms for the mask, the upscale and the blend (wall; median and min over the runs), the
call's CPU time (what it costs with the cores to itself: on a shared machine wall time includes
waiting for one) and the peak memory one call adds (numpy's allocations by tracemalloc; the
process's RSS sampled every ms, which also sees PIL's buffers). Budget: 10 % of a GPU edit, about 0.4 s in all.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

import numpy as np
from PIL import Image

from kontext_engine.preserve import compose_full_resolution
from kontext_engine.resolution import condition_size

BUDGET_MS = 400.0


def photo(width: int, height: int) -> np.ndarray:
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 120 * x + 30 * np.sin(9 * y)
    img[..., 1] = 80 + 90 * y + 25 * np.cos(7 * x + 3 * y)
    img[..., 2] = 140 - 60 * x * y
    tile = np.random.default_rng(0).integers(-12, 13, (512, 512, 3)).astype(np.float32)
    img += np.tile(tile, (height // 512 + 1, width // 512 + 1, 1))[:height, :width]
    return np.clip(img, 0, 255).astype(np.uint8)


def edits(seen: np.ndarray) -> dict[str, np.ndarray]:
    h, w = seen.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    small = seen.copy()
    small[((x / w - 0.3) / 0.12) ** 2 + ((y / h - 0.6) / 0.16) ** 2 <= 1] = (40, 70, 210)
    large = seen.copy()
    large[:, : int(0.45 * w)] = (230, 220, 120)
    return {"small edit (object, ~6 %)": small, "large edit (background, 45 %)": large, "whole frame": 255 - seen}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_during(fn: Callable[[], object]) -> int:
    """The most the process's RSS rose above its starting point while fn ran."""
    start, peak, done = rss_bytes(), [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes() - start)
            time.sleep(0.001)

    t = threading.Thread(target=watch)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return peak[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4000x3000", help="input WxH (default 4000x3000, 12 MP)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    original = photo(width, height)
    bucket = condition_size(width, height)
    seen = np.asarray(Image.fromarray(original).resize(bucket, Image.Resampling.LANCZOS))
    load = os.getloadavg()[0]
    print(
        f"compose_full_resolution · {width}×{height} in, bucket {bucket[0]}×{bucket[1]} · "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} · numpy {np.__version__}, "
        f"Pillow {Image.__version__} · {datetime.date.today()} · {args.runs} runs, median (min)\n"
    )
    print("| case | changed | mask ms | upscale ms | blend ms | total ms | CPU ms | numpy peak MB | RSS peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = worst_cpu = 0.0
    for name, output in edits(seen).items():
        compose_full_resolution(original, seen, output)  # warm: page in, thread pool up
        runs, cpu = [], []
        for _ in range(args.runs):
            c = time.process_time()
            runs.append(compose_full_resolution(original, seen, output))
            cpu.append((time.process_time() - c) * 1000)
        t = {k: [r.timings_ms[k] for r in runs] for k in ("mask", "mask_upsample", "upscale", "blend", "total")}
        mask = [a + b for a, b in zip(t["mask"], t["mask_upsample"], strict=True)]
        tracemalloc.start()
        compose_full_resolution(original, seen, output)
        numpy_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss_peak = peak_rss_during(lambda o=output: compose_full_resolution(original, seen, o))
        worst = max(worst, statistics.median(t["total"]))
        worst_cpu = max(worst_cpu, statistics.median(cpu))

        def cell(v: list[float]) -> str:
            return f"{statistics.median(v):.0f} ({min(v):.0f})"

        print(
            f"| {name} | {runs[0].changed_fraction:.1%}{' (whole frame)' if runs[0].whole_frame else ''} | "
            f"{cell(mask)} | {cell(t['upscale'])} | {cell(t['blend'])} | {cell(t['total'])} | {cell(cpu)} | "
            f"{numpy_peak / 2**20:.0f} | {rss_peak / 2**20:.0f} |"
        )

    def verdict(ms: float) -> str:
        return "within" if ms <= BUDGET_MS else "OVER"

    print(
        f"\nworst median: {worst:.0f} ms wall ({verdict(worst)} the {BUDGET_MS:.0f} ms budget), "
        f"{worst_cpu:.0f} ms CPU ({verdict(worst_cpu)})"
    )
    print(
        f"load average after the run {os.getloadavg()[0]:.1f} (wall time on a busy machine includes waiting for a core)"
    )


if __name__ == "__main__":
    main()
