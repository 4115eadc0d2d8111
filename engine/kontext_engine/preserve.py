"""`output_resolution: input`: the edit at the input's own size, unedited pixels kept bit for bit.

The model sees the input resized to its ~1 MP bucket (`seen`) and returns an image at that bucket
(`output`). `compose_full_resolution` finds what the edit changed by comparing those two at the
bucket, where it is cheap, then upscales the output only where it changed and blends it into the
original by a feathered mask. Outside the mask the original's pixels are returned untouched.

A global change is not an edit: a frame a little brighter, colour-shifted or moved by a pixel or
two is compensated before the comparison (docs/preserve.md says how and why).
"""

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PreserveSettings:
    # The change mask is worked out on the bucket reduced by this factor (2×2 means): a quarter of
    # the pixels, and the averaging is the denoising the comparison needs anyway. Radii below are
    # in those "analysis" pixels (one is 2 bucket px, about 7 px of a 12 MP photo).
    analysis_scale: int = 2
    # ΔE (CIE 1976) above which a pixel counts as changed. A JND is ≈ 2.3; the VAE's round trip
    # alone moves textured areas by a few units, so 10 means "visibly edited".
    threshold: float = 10.0
    speck_px: int = 1  # opening radius: changed blobs narrower than 2r + 1 px are noise
    hole_px: int = 3  # closing radius: holes narrower than 2r + 1 px inside an edit are part of it
    feather_px: int = 2  # the mask ramps from 1 to 0 over 2 × this, outside the edit (≈ 27 px at 12 MP)
    whole_frame_above: float = 0.6  # more changed than this: return the plain upscaled output
    max_shift: int = 3  # largest global translation compensated, in bucket px


@dataclass
class Preserved:
    image: np.ndarray  # (H, W, 3) uint8: the original where mask is 0, the upscaled edit elsewhere
    mask: np.ndarray  # (H, W) uint8: 0 = original kept, 255 = edit, between = feathered edge
    changed_fraction: float  # fraction of the frame that the edit changed (before feathering)
    whole_frame: bool  # the edit covered most of the frame: image is the plain upscaled output
    timings_ms: dict[str, float] = field(default_factory=dict)
    shift: tuple[int, int] = (0, 0)  # (dy, dx) global translation of the output that was undone (bucket px)
    gain: tuple[float, ...] = (1.0, 1.0, 1.0)  # per-channel output ≈ gain · seen + offset that was undone
    offset: tuple[float, ...] = (0.0, 0.0, 0.0)


def compose_full_resolution(
    original: np.ndarray,
    seen: np.ndarray,
    output: np.ndarray,
    limit: np.ndarray | None = None,
    settings: PreserveSettings = PreserveSettings(),  # frozen: one shared default is safe
) -> Preserved:
    """The edit at the original's size.

    original: (H, W, 3) uint8, the input as received. seen: (h, w, 3) uint8, the input as the model
    saw it (the original resized to its bucket, Lanczos, no crop). output: (h, w, 3) uint8, the
    model's output at that same bucket. limit: optional (H, W) uint8, 255 where the edit may
    change pixels (the user's mask); the change mask never exceeds it.
    """
    H, W = original.shape[:2]
    h, w = seen.shape[:2]
    if original.shape != (H, W, 3) or original.dtype != np.uint8:
        raise ValueError(f"original must be (H, W, 3) uint8, got {original.shape} {original.dtype}")
    if seen.shape != (h, w, 3) or output.shape != seen.shape or seen.dtype != np.uint8 or output.dtype != np.uint8:
        raise ValueError(f"seen and output must be the same (h, w, 3) uint8, got {seen.shape} and {output.shape}")
    if limit is not None and (limit.shape != (H, W) or limit.dtype != np.uint8):
        raise ValueError(f"limit must be (H, W) uint8, got {limit.shape} {limit.dtype}")

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    shift = estimate_shift(seen, output, settings.max_shift)
    aligned = translate(output, *shift)
    gain, offset, lut = fit_gain_offset(seen, aligned, shift)
    corrected = aligned if lut is None else np.stack([lut[c][aligned[..., c]] for c in range(3)], axis=-1)
    k = settings.analysis_scale
    seen_small, corrected_small = _reduce(seen, k), _reduce(corrected, k)
    small = (seen_small.shape[1], seen_small.shape[0])
    limit_small = None
    if limit is not None:
        limit_small = np.asarray(Image.fromarray(limit).resize(small, Image.Resampling.BOX)) >= 128
    edge = tuple(-(-abs(d) // k) * (1 if d > 0 else -1) for d in shift)  # the shifted-in strip, rounded out
    changed, feather = change_mask(seen_small, corrected_small, edge, limit_small, settings)
    fraction = float(changed.mean())
    whole = fraction > settings.whole_frame_above and limit is None  # the user's mask always bounds the change
    timings["mask"] = _ms(t0)

    # The full-size mask, computed only over the bounding box of its non-zero part.
    t1 = time.perf_counter()
    mask = np.zeros((H, W), np.uint8)
    box = _full_box(feather, small, (W, H))
    if box is not None:
        mask[box[1] : box[3], box[0] : box[2]] = _resize(feather, (W, H), box, Image.Resampling.BILINEAR)
        if limit is not None:
            np.minimum(mask, limit, out=mask)
    timings["mask_upsample"] = _ms(t1)

    t2 = time.perf_counter()
    if whole:
        # A style transfer or a new background: the model's own image, as it made it.
        image = _resize(output, (W, H), (0, 0, W, H), Image.Resampling.LANCZOS)
        timings["upscale"] = _ms(t2)
        timings["blend"] = 0.0
    elif box is None:
        image = original.copy()
        timings["upscale"] = 0.0
        timings["blend"] = _ms(t2)
    else:
        up = _resize(corrected, (W, H), box, Image.Resampling.LANCZOS)
        timings["upscale"] = _ms(t2)
        t3 = time.perf_counter()
        image = original.copy()
        x0, y0, x1, y1 = box
        blend_into(image[y0:y1, x0:x1], up, mask[y0:y1, x0:x1])
        timings["blend"] = _ms(t3)
    timings["total"] = _ms(t0)
    return Preserved(image, mask, fraction, whole, timings, shift, gain, offset)


def estimate_shift(seen: np.ndarray, output: np.ndarray, max_shift: int) -> tuple[int, int]:
    """(dy, dx) such that output[y + dy, x + dx] ≈ seen[y, x]: a whole-frame translation of a
    pixel or two (the model sometimes re-renders the frame slightly moved). A small search: every
    shift up to `max_shift` is scored by the median difference of the two images' fine detail (the
    grey Laplacian, which no brightness or colour drift reaches) over a sparse grid, on the
    points whose colour moved no more than a drift can (an edit, whose pixels differ at any shift,
    would only blur the scores). A shift is kept only if it clearly beats no shift at all."""
    if max_shift <= 0:
        return 0, 0
    a, b = _detail(seen), _detail(output)
    hh, ww = a.shape
    m = max_shift
    grid = (slice(m, hh - m, 6), slice(m, ww - m, 6))  # ~30 000 points: plenty for a median, 49 times
    near = (np.abs(seen[grid].astype(np.int16) - output[grid]) <= 45).all(axis=-1)
    if near.sum() < 1000:
        return 0, 0
    inner = a[grid][near]

    def score(dy: int, dx: int) -> float:
        moved = b[m + dy : hh - m + dy : 6, m + dx : ww - m + dx : 6][near]
        return float(np.median(np.abs(inner - moved)))

    scores = {(dy, dx): score(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)}
    best = min(scores, key=lambda d: (scores[d], abs(d[0]) + abs(d[1])))
    return best if scores[best] < 0.7 * scores[(0, 0)] else (0, 0)


def translate(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image[y + dy, x + dx], edges repeated: the output moved back onto the input's grid."""
    if (dy, dx) == (0, 0):
        return image
    h, w = image.shape[:2]
    rows = np.clip(np.arange(h) + dy, 0, h - 1)
    cols = np.clip(np.arange(w) + dx, 0, w - 1)
    return image[rows][:, cols]


def fit_gain_offset(
    seen: np.ndarray, output: np.ndarray, shift: tuple[int, int]
) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray | None]:
    """Per channel, output ≈ gain · seen + offset over the unedited majority of the frame, and a
    (3, 256) uint8 table that undoes it on the output (None when undoing it would change nothing).

    Least squares on the inliers of the previous fit, starting from the median difference, over
    the pixels that moved little: an edit is the outliers, as long as it covers less than about
    half the frame (more is a whole-frame edit anyway) or differs from what it replaced by more
    than a drift would. Near-black and near-white pixels are left out: clipping is not linear."""
    m = max(abs(shift[0]), abs(shift[1])) + 1
    sub = (slice(m, -m, 5), slice(m, -m, 5))  # ~40 000 pixels: plenty for two parameters
    x_all = seen[sub].reshape(-1, 3).astype(np.float32)
    y_all = output[sub].reshape(-1, 3).astype(np.float32)
    # Candidates: pixels no channel of which moved more than a drift can (gain 0.9-1.1 and ±20
    # levels move a value by at most ~45): a large edit in other colours is out from the start.
    near = (np.abs(y_all - x_all) <= 45).all(axis=1)
    gains, offsets = [], []
    for c in range(3):
        x, y = x_all[:, c], y_all[:, c]
        keep = near & (x > 8) & (x < 247) & (y > 8) & (y < 247)
        if keep.sum() < 0.3 * len(x):  # most of the frame changed: no drift to tell from the edit
            gains.append(1.0)
            offsets.append(0.0)
            continue
        x, y = x[keep], y[keep]
        a, b = 1.0, float(np.median(y - x)) if len(x) else 0.0
        for _ in range(3):
            r = y - (a * x + b)
            spread = 1.4826 * float(np.median(np.abs(r - np.median(r)))) if len(r) else 0.0
            inliers = np.abs(r) <= max(2.5 * spread, 3.0)
            if inliers.sum() < 0.3 * max(len(x), 1) or inliers.sum() < 100:
                a, b = 1.0, 0.0  # no majority agrees on a global change: there is none to undo
                break
            xi, yi = x[inliers], y[inliers]
            var = float(np.var(xi))
            a = float(np.mean((xi - xi.mean()) * (yi - yi.mean())) / var) if var > 1.0 else 1.0
            b = float(yi.mean() - a * xi.mean())
        if not (0.9 <= a <= 1.1 and abs(b) <= 20):  # a change this strong is an edit (e.g. relighting)
            a, b = 1.0, 0.0
        if max(abs(b), abs(255 * (a - 1) + b)) < 1.0:  # under a level anywhere: the fit's own noise
            a, b = 1.0, 0.0
        gains.append(a)
        offsets.append(b)
    v = np.arange(256, dtype=np.float32)
    lut = np.stack([np.clip(np.round((v - b) / a), 0, 255) for a, b in zip(gains, offsets, strict=True)])
    lut = lut.astype(np.uint8)
    identity = bool((lut == np.arange(256)).all())
    return tuple(gains), tuple(offsets), None if identity else lut


def change_mask(
    seen: np.ndarray,
    output: np.ndarray,
    shift: tuple[int, int],
    limit: np.ndarray | None,
    settings: PreserveSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """(changed bool, feather float32 in [0, 1]), both the size of `seen` (the analysis grid).

    changed: ΔE above the threshold, opened (specks out) then closed (small holes in). feather:
    1 on `changed` and within `feather_px` of it, then a smooth ramp to exactly 0 at 2 × feather_px:
    the ramp lies outside the edit, so the edit's own edge is never half the old picture."""
    d = _lab(seen) - _lab(output)
    delta2 = np.einsum("hwc,hwc->hw", d, d)
    x = delta2 > settings.threshold**2
    dy, dx = shift
    h, w = x.shape
    x[: max(0, -dy)] = x[h - max(0, dy) :] = False  # shifted in from outside the frame: not content
    x[:, : max(0, -dx)] = x[:, w - max(0, dx) :] = False
    x = _dilate(_erode(x, settings.speck_px), settings.speck_px)
    x = _erode(_dilate(x, settings.hole_px), settings.hole_px)
    if limit is not None:
        x &= limit
    r = settings.feather_px
    f = _box_mean(_dilate(x, r).astype(np.float32), r) if r > 0 else x.astype(np.float32)
    f = f * f * (3 - 2 * f)  # smoothstep: no visible kink where the ramp starts and ends
    return x, f


def blend_into(region: np.ndarray, up: np.ndarray, mask: np.ndarray) -> None:
    """region = round((region · (255 − m) + up · m) / 255), in place: m = 0 leaves region exactly
    as it was, m = 255 gives up exactly; only the feathered edge (0 < m < 255) is arithmetic."""
    # Whole pixels as 3-byte items: one mask test per pixel (10× faster than broadcasting to 3).
    np.copyto(region.view("V3")[..., 0], up.view("V3")[..., 0], where=mask == 255)
    edge = np.nonzero((mask > 0) & (mask < 255))  # region is a view into the result: index it in 2-D
    if len(edge[0]) == 0:
        return
    m = mask[edge][:, None].astype(np.uint16)
    t = region[edge].astype(np.uint16) * (255 - m)
    t += up[edge].astype(np.uint16) * m
    t += 128  # ≤ 65153: (t + (t >> 8)) >> 8 is round(t / 255) exactly in 16 bits
    t += t >> 8
    t >>= 8
    region[edge] = t


def _full_box(feather: np.ndarray, small: tuple[int, int], full: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) at full size covering every pixel the upsampled mask makes non-zero, its
    edges on the grid where a full-size coordinate maps to a whole source pixel (of the analysis
    grid and of the bucket alike), so the part's filter taps are those of the whole frame."""
    ys, xs = np.nonzero(feather.max(1) > 0.5 / 255)[0], np.nonzero(feather.max(0) > 0.5 / 255)[0]
    if len(ys) == 0:
        return None
    (w, h), (W, H) = small, full
    pad_x, pad_y = 2 * -(-W // w), 2 * -(-H // h)  # the bilinear tap reaches one analysis px out
    step_x = math.lcm(W // math.gcd(W, w), W // math.gcd(W, 2 * w))
    step_y = math.lcm(H // math.gcd(H, h), H // math.gcd(H, 2 * h))
    x0 = max(0, (int(xs[0]) * W // w - pad_x) // step_x * step_x)
    y0 = max(0, (int(ys[0]) * H // h - pad_y) // step_y * step_y)
    x1 = min(W, -(-(-(-(int(xs[-1]) + 1) * W // w) + pad_x) // step_x) * step_x)
    y1 = min(H, -(-(-(-(int(ys[-1]) + 1) * H // h) + pad_y) // step_y) * step_y)
    return x0, y0, x1, y1


def _resize(
    image: np.ndarray, full: tuple[int, int], box: tuple[int, int, int, int], resample: Image.Resampling
) -> np.ndarray:
    """The part `box` (full-size pixels) of `image` resized to `full`: the same pixels as that crop
    of the whole resize, computed only for the part (a writable array of its own)."""
    if image.dtype != np.uint8:
        image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    (W, H), (h, w) = full, image.shape[:2]
    x0, y0, x1, y1 = box
    src = Image.fromarray(image)
    if y1 - y0 > H // 2:
        # Tall (the whole frame too): every row of the box's columns, then a crop. PIL takes a box
        # across the columns exactly, so column strips on threads are exact too (PIL lets go of
        # the GIL while it resamples); strip edges fall on whole source pixels.
        out = np.empty((H, x1 - x0, *image.shape[2:]), np.uint8)
        step = W // math.gcd(W, w)
        n = max(1, min(_THREADS, (x1 - x0) * H // 2_000_000, (x1 - x0) // step))
        edges = [x0] + [x0 + (x1 - x0) * i // n // step * step for i in range(1, n)] + [x1]

        def strip(a: int, b: int) -> None:
            out[:, a - x0 : b - x0] = np.asarray(src.resize((b - a, H), resample, box=(a * w / W, 0, b * w / W, h)))

        if n == 1:
            strip(x0, x1)
        else:
            list(_POOL.map(strip, edges[:-1], edges[1:]))
        return out[y0:y1]
    # Columns first, over every source row; then the rows, as a horizontal pass on the transpose:
    # PIL's vertical pass with a box that ends inside the frame does not give the whole resize's
    # pixels (up to 46 levels off).
    cols = np.asarray(src.resize((x1 - x0, h), resample, box=(x0 * w / W, 0, x1 * w / W, h)))
    turned = Image.fromarray(np.ascontiguousarray(cols.swapaxes(0, 1)))
    part = np.asarray(turned.resize((y1 - y0, x1 - x0), resample, box=(y0 * h / H, 0, y1 * h / H, x1 - x0)))
    return np.ascontiguousarray(part.swapaxes(0, 1))


_THREADS = max(1, min(4, os.cpu_count() or 1))  # for whole-frame upscales (≥ 2 MP a strip)
_POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="preserve")


# sRGB (D65) → CIE Lab. The uint8 → linear step is a table; the rest is a 3×3 and a cube root.
_V = np.arange(256, dtype=np.float64) / 255
_LINEAR = np.where(_V <= 0.04045, _V / 12.92, ((_V + 0.055) / 1.055) ** 2.4).astype(np.float32)
_RGB_TO_XYZ = (
    np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
    / np.array([[0.95047], [1.0], [1.08883]])  # relative to the D65 white
).astype(np.float32)


def _lab(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 sRGB → (h, w, 3) float32 Lab."""
    xyz = _LINEAR[image] @ _RGB_TO_XYZ.T
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116).astype(np.float32)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def _reduce(image: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).reduce(k)) if k > 1 else image


def _detail(image: np.ndarray) -> np.ndarray:
    """The grey image's Laplacian (4 · centre − its 4 neighbours), 0 on the border; float32."""
    g = image @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.zeros_like(g)
    c = out[1:-1, 1:-1]
    c += 4 * g[1:-1, 1:-1]
    c -= g[:-2, 1:-1]
    c -= g[2:, 1:-1]
    c -= g[1:-1, :-2]
    c -= g[1:-1, 2:]
    return out


def _box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r + 1)² square around each pixel (rows and columns separately), counting only
    the pixels inside the frame; float32. Zero wherever the square holds only zeros."""
    for axis in (0, 1):
        n = x.shape[axis]
        c = np.cumsum(x, axis=axis, dtype=np.float64)  # a run of zeros adds exactly nothing
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        hi, lo = np.minimum(np.arange(n) + r + 1, n), np.maximum(np.arange(n) - r, 0)
        count = (hi - lo).astype(np.float32).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
        x = ((np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / count).astype(np.float32)
    return x


def _dilate(x: np.ndarray, r: int) -> np.ndarray:
    """Max over the (2r + 1)² square (bool), rows then columns; outside the frame counts as nothing."""
    for axis in (0, 1):
        y = x.copy()
        for s in range(1, r + 1):
            lead, lag = [slice(None)] * 2, [slice(None)] * 2
            lead[axis], lag[axis] = slice(s, None), slice(None, -s)
            y[tuple(lead)] |= x[tuple(lag)]
            y[tuple(lag)] |= x[tuple(lead)]
        x = y
    return x


def _erode(x: np.ndarray, r: int) -> np.ndarray:
    """Min over the square; the frame's edge does not erode (a change may touch the border)."""
    return ~_dilate(~x, r)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
