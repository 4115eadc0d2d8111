"""Quality gate for the lossy modes: FP8, FP8 weights, fast mode (step forecasting), and FP8 + fast, against the
exact path (bf16 eager on GPU; float32 on CPU) with the same seeds. Prints PSNR and SSIM per case
and their medians, and writes side-by-side images (reference | mode) to --out.

    python bench/quality_gate.py --model-dir DIR --device cuda      # real weights: the gate itself
    python bench/quality_gate.py                                     # tiny model on CPU: numeric drift

Gate with real weights (PERFORMANCE.md): PSNR ≥ 30 dB for caching-only changes; LPIPS median ≤ 0.15
for FP8 (LPIPS needs its AlexNet weights, which this script does not download; see --help).
"""

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

import numpy as np
import torch
from PIL import Image

from kontext_engine.editor import Editor, EditRequest
from kontext_engine.loading import load_model
from kontext_engine.speed import accelerate
from kontext_engine.tiny import generate

PROMPTS = ["make the sky purple", "turn it into a watercolor painting", "add a small black cat", "make it winter"]


def case_image(i: int, size: int = 512) -> np.ndarray:
    """Deterministic inputs with structure: gradients, a disc and stripes, different per case."""
    y, x = np.mgrid[0:size, 0:size] / size
    disc = ((x - 0.3 - 0.1 * i) ** 2 + (y - 0.5) ** 2 < 0.05).astype(float)
    stripes = (np.sin(40 * x * (i + 1)) > 0).astype(float) * 0.3
    rgb = np.stack([x, y * (1 - disc), 0.5 * disc + stripes], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else 99.0


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Global-statistics SSIM on luma (a coarse structural check beside PSNR)."""
    la, lb = (im.astype(np.float64) @ [0.299, 0.587, 0.114] for im in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb, va, vb = la.mean(), lb.mean(), la.var(), lb.var()
    cov = ((la - ma) * (lb - mb)).mean()
    return float(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, help="default: the tiny model, generated")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "kontext-quality")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    root = args.model_dir or generate(Path(tempfile.mkdtemp()) / "tiny")
    exact_precision = "bf16" if device.type == "cuda" else "fp32"
    # mode → (precision it runs in, fast); one precision is loaded at a time, so the GPU holds one model.
    modes = {
        "fp8": ("fp8", False),
        "fp8-weights": ("fp8-weights", False),
        "fast": (exact_precision, True),
        "fp8 + fast": ("fp8", True),
    }
    requests = [
        EditRequest(case_image(i), prompt, "match_input_image", args.steps, 2.5, (100 + i,))
        for i, prompt in enumerate(PROMPTS)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    refs: list[np.ndarray] = []
    for precision in dict.fromkeys([exact_precision, *(p for p, _ in modes.values())]):
        model = load_model(root, device, dtype)
        ran = accelerate(model, precision, False, None).precision
        if ran != precision:
            print(f"{precision} fell back to {ran} on this device", file=sys.stderr)
        editor = Editor(model, None)
        if precision == exact_precision:
            refs = [editor.edit(req).images[0] for req in requests]
        for mode, (p, fast) in modes.items():
            if p != precision:
                continue
            for i, req in enumerate(requests):
                out = editor.edit(EditRequest(**{**req.__dict__, "fast": fast})).images[0]
                scores[mode].append((psnr(refs[i], out), ssim(refs[i], out)))
                side = np.concatenate([refs[i], out], axis=1)
                Image.fromarray(side).save(args.out / f"case{i}-{mode.replace(' + ', '+')}.png")
        del editor, model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print(f"## quality gate · {root} · {device} · {args.steps} steps · {datetime.date.today().isoformat()}")
    print(f"torch {torch.__version__}; reference: {str(dtype).removeprefix('torch.')} eager; images in {args.out}\n")
    print("| mode | PSNR median (dB) | PSNR min | SSIM median |\n|---|---|---|---|")
    for mode, xs in scores.items():
        p = [s[0] for s in xs]
        print(f"| {mode} | {statistics.median(p):.1f} | {min(p):.1f} | {statistics.median(s[1] for s in xs):.3f} |")


if __name__ == "__main__":
    main()
