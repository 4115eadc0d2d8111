"""output_resolution=input: a 12 MP photo edited at its bucket comes back at 12 MP, and every pixel
the edit did not change is the original's, bit for bit.

The scene is a synthetic 4000×3000 photo (gradients, a fine texture, a red ellipse as the known
object). The engine's test double changes only a known region of what the model saw (`seen`, the
photo resized to its bucket as the engine does) and returns that as its output, optionally with
the small noise a VAE round trip leaves, a global brightness change or a shift of a pixel or two.
"""

import numpy as np
import pytest
from PIL import Image

from kontext_engine.preserve import PreserveSettings, compose_full_resolution
from kontext_engine.resolution import condition_size, output_size

W, H = 4000, 3000
OBJECT = (0.30, 0.60, 0.12, 0.16)  # centre x, centre y, radius x, radius y, as fractions of the frame
# How far outside an edit the mask may reach, in full-size px: the feather (4 analysis px = 8 bucket
# px ≈ 27 px here) plus the analysis grid and the bilinear tap (≈ 7 px each), rounded up.
MARGIN = 50


def ellipse(width: int, height: int, shape: tuple[float, float, float, float], grow: float = 0) -> np.ndarray:
    """(height, width) bool: pixel centres inside the ellipse, its radii grown by `grow` px."""
    cx, cy, rx, ry = shape
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width - cx) / (rx + grow / width)
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height - cy) / (ry + grow / height)
    return x[None, :] ** 2 + y[:, None] ** 2 <= 1


def columns(width: int, height: int, upto: float, grow: float = 0) -> np.ndarray:
    """(height, width) bool: the pixels left of `upto` × width (+ grow px)."""
    x = np.arange(width) + 0.5 < upto * width + grow
    return np.broadcast_to(x[None, :], (height, width))


def photo(width: int = W, height: int = H) -> np.ndarray:
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 120 * x + 30 * np.sin(9 * y)
    img[..., 1] = 80 + 90 * y + 25 * np.cos(7 * x + 3 * y)
    img[..., 2] = 140 - 60 * x * y
    tile = np.random.default_rng(0).integers(-12, 13, (500, 500, 3)).astype(np.float32)  # sensor-like grain
    img += np.tile(tile, (height // 500 + 1, width // 500 + 1, 1))[:height, :width]
    img[ellipse(width, height, OBJECT)] = (200, 40, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def as_seen(original: np.ndarray) -> np.ndarray:
    """The input as the model sees it: what Editor.encode_condition resizes it to."""
    w, h = condition_size(original.shape[1], original.shape[0])
    return np.asarray(Image.fromarray(original).resize((w, h), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def original() -> np.ndarray:
    return photo()


@pytest.fixture(scope="module")
def seen(original: np.ndarray) -> np.ndarray:
    return as_seen(original)


def engine(
    seen: np.ndarray,
    region: np.ndarray | None,
    colour: tuple[int, int, int] = (40, 70, 210),
    noise: int = 0,
    gain: float = 1.0,
    shift: int = 0,
) -> np.ndarray:
    """The engine's test double: `seen` with `region` painted `colour`, then (as a real model may do
    to the whole frame) ±`noise` levels of noise, a brightness gain, a shift of `shift` px right."""
    out = seen.astype(np.float32)
    if region is not None:
        out[region] = colour
    if noise:
        out += np.random.default_rng(1).integers(-noise, noise + 1, out.shape)
    out *= gain
    if shift:
        out = np.concatenate([np.repeat(out[:, :1], shift, axis=1), out[:, :-shift]], axis=1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def upscaled(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((W, H), Image.Resampling.LANCZOS))


def blended(original: np.ndarray, up: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """round((original · (255 − m) + up · m) / 255), written out plainly (where m > 0)."""
    out, sel = original.copy(), mask > 0
    m = mask[sel][:, None].astype(np.int32)
    total = original[sel].astype(np.int32) * (255 - m) + up[sel].astype(np.int32) * m
    out[sel] = (2 * total + 255) // 510
    return out


def bucket_region(seen: np.ndarray, shape: tuple[float, float, float, float]) -> np.ndarray:
    return ellipse(seen.shape[1], seen.shape[0], shape)


def test_match_input_image_output_is_the_condition_bucket() -> None:
    # What the feature relies on: output and seen have the same size, so they compare pixel for pixel.
    for size in [(W, H), (H, W), (4032, 3024), (1920, 1080), (3000, 2000), (5000, 1000)]:
        assert output_size("match_input_image", *size) == condition_size(*size)


def test_a_small_edit_changes_only_its_region(original: np.ndarray, seen: np.ndarray) -> None:
    region = bucket_region(seen, OBJECT)
    output = engine(seen, region, noise=2)
    r = compose_full_resolution(original, seen, output)

    assert r.image.shape == original.shape and r.image.dtype == np.uint8 and r.mask.shape == (H, W)
    assert not r.whole_frame and r.shift == (0, 0)
    assert abs(r.changed_fraction - region.mean()) < 0.02 * region.mean()  # within 2 % of the truth
    kept = r.mask == 0
    assert np.array_equal(r.image[kept], original[kept])  # mask 0: the original, bit for bit
    outside = ~ellipse(W, H, OBJECT, grow=MARGIN)
    assert not r.mask[outside].any()  # ... and that is everywhere outside the edit
    inside = ellipse(W, H, OBJECT, grow=-MARGIN)
    assert (r.mask[inside] == 255).all()
    up = upscaled(output)
    assert np.array_equal(r.image[inside], up[inside])  # the edit is the upscaled output ...
    assert np.array_equal(r.image, blended(original, up, r.mask))  # ... blended in by the mask
    assert set(r.timings_ms) >= {"mask", "upscale", "blend", "total"}


@pytest.mark.parametrize(
    ("gain", "shift"), [(1.02, 0), (0.98, 0), (1.0, 1), (1.0, 2), (1.02, 1)], ids=["+2%", "-2%", "1px", "2px", "both"]
)
def test_a_global_brightness_change_or_shift_is_not_an_edit(
    original: np.ndarray, seen: np.ndarray, gain: float, shift: int
) -> None:
    r = compose_full_resolution(original, seen, engine(seen, None, noise=2, gain=gain, shift=shift))
    assert r.changed_fraction < 0.001
    assert not r.mask.any()
    assert np.array_equal(r.image, original)
    assert r.shift == (0, shift)


def test_an_edit_in_a_brightened_shifted_frame_is_found_and_aligned(original: np.ndarray, seen: np.ndarray) -> None:
    region = bucket_region(seen, OBJECT)
    output = engine(seen, region, noise=2, gain=1.02, shift=1)
    r = compose_full_resolution(original, seen, output)
    assert r.shift == (0, 1)
    v = np.arange(60, 201)  # the fitted change, over the scene's range of values, is the 2 % gain
    assert all(np.abs(g * v + o - 1.02 * v).max() < 1.5 for g, o in zip(r.gain, r.offset, strict=True))
    assert abs(r.changed_fraction - region.mean()) < 0.02 * region.mean()
    outside = ~ellipse(W, H, OBJECT, grow=MARGIN)
    assert np.array_equal(r.image[outside], original[outside])
    # Inside, the edit with the global change undone: the colour painted, not 2 % brighter (the
    # blue, 210, lies beyond the values the fit saw, 80-150, so its inverse is a few levels off).
    inside = ellipse(W, H, OBJECT, grow=-MARGIN)
    assert np.abs(r.image[inside].astype(int) - (40, 70, 210)).max() <= 6
    assert np.abs(r.image[inside].astype(int) - (40, 70, 210)).mean() < 2


def test_a_large_edit_is_still_blended(original: np.ndarray, seen: np.ndarray) -> None:
    region = columns(seen.shape[1], seen.shape[0], 0.45)  # a new background on the left 45 %
    output = engine(seen, region, colour=(230, 220, 120))
    r = compose_full_resolution(original, seen, output)
    assert not r.whole_frame
    assert abs(r.changed_fraction - 0.45) < 0.02 * 0.45
    outside = ~columns(W, H, 0.45, grow=MARGIN)
    assert np.array_equal(r.image[outside], original[outside])
    assert np.array_equal(r.image, blended(original, upscaled(output), r.mask))


def test_a_drift_under_a_large_edit_is_still_undone(original: np.ndarray, seen: np.ndarray) -> None:
    # 55 % of the frame repainted, and the rest 2 % brighter and one pixel to the right: the drift
    # is estimated from the unedited 45 % alone.
    region = columns(seen.shape[1], seen.shape[0], 0.55)
    r = compose_full_resolution(original, seen, engine(seen, region, colour=(230, 220, 120), gain=1.02, shift=1))
    assert r.shift == (0, 1) and not r.whole_frame
    v = np.arange(60, 201)
    assert all(np.abs(g * v + o - 1.02 * v).max() < 1.5 for g, o in zip(r.gain, r.offset, strict=True))
    assert abs(r.changed_fraction - 0.55) < 0.02 * 0.55
    outside = ~columns(W, H, 0.55, grow=MARGIN)
    assert np.array_equal(r.image[outside], original[outside])


def test_a_whole_frame_edit_is_the_plain_upscaled_output(original: np.ndarray, seen: np.ndarray) -> None:
    output = (255 - seen // 2).astype(np.uint8)  # a style change: every pixel differs
    r = compose_full_resolution(original, seen, output)
    assert r.whole_frame
    assert r.changed_fraction > 0.98
    assert np.array_equal(r.image, upscaled(output))


def test_the_users_mask_bounds_the_change(original: np.ndarray, seen: np.ndarray) -> None:
    other = (0.75, 0.3, 0.1, 0.12)
    region = bucket_region(seen, OBJECT) | bucket_region(seen, other)
    output = engine(seen, region)
    limit = (ellipse(W, H, OBJECT, grow=100) * 255).astype(np.uint8)  # the user allowed only the object
    r = compose_full_resolution(original, seen, output, limit)
    assert (r.mask <= limit).all()
    assert abs(r.changed_fraction - bucket_region(seen, OBJECT).mean()) < 0.02 * bucket_region(seen, OBJECT).mean()
    outside = ~ellipse(W, H, OBJECT, grow=MARGIN)
    assert np.array_equal(r.image[outside], original[outside])  # the other region is left as it was
    # A whole-frame change under a user's mask is still bounded by it.
    r = compose_full_resolution(original, seen, (255 - seen // 2).astype(np.uint8), limit)
    assert not r.whole_frame and (r.mask <= limit).all()
    assert np.array_equal(r.image[limit == 0], original[limit == 0])


@pytest.mark.parametrize("size", [(640, 480), (1333, 1001), (1512, 2016)], ids=["below-bucket", "odd", "portrait"])
def test_other_sizes(size: tuple[int, int]) -> None:
    # Smaller than its bucket (the "upscale" is a Lanczos downscale), sizes sharing no factor with
    # the bucket (the part upscaled is then whole rows or columns), portrait.
    width, height = size
    original = photo(width, height)
    seen = as_seen(original)
    region = bucket_region(seen, OBJECT)
    r = compose_full_resolution(original, seen, engine(seen, region, noise=2))
    assert r.image.shape == original.shape and r.mask.shape == (height, width)
    assert abs(r.changed_fraction - region.mean()) < 0.02 * region.mean()
    outside = ~ellipse(width, height, OBJECT, grow=MARGIN)
    assert not r.mask[outside].any()
    assert np.array_equal(r.image[r.mask == 0], original[r.mask == 0])
    inside = ellipse(width, height, OBJECT, grow=-MARGIN)
    assert (r.mask[inside] == 255).all()


def test_no_change_returns_the_original(original: np.ndarray, seen: np.ndarray) -> None:
    r = compose_full_resolution(original, seen, seen.copy())
    assert r.changed_fraction == 0 and not r.mask.any()
    assert np.array_equal(r.image, original) and r.image is not original


def test_settings_and_shapes_are_checked(original: np.ndarray, seen: np.ndarray) -> None:
    with pytest.raises(ValueError, match="same"):
        compose_full_resolution(original, seen, seen[:-16])
    with pytest.raises(ValueError, match="original"):
        compose_full_resolution(original[..., :1], seen, seen)
    with pytest.raises(ValueError, match="limit"):
        compose_full_resolution(original, seen, seen, np.zeros((H, W), bool))
    assert PreserveSettings().whole_frame_above == 0.6
