"""Sizes: the condition image's bucket and the output size for each `aspect_ratio`.

Kontext [dev] was trained on these ~1 MP resolutions (w, h), all multiples of 16. Both the
condition image and the output use one of them, so no size is ever floored away from a bucket
(diffusers' max_area rounding turns 672×1568 into 656×1552; we do not).
"""

from fractions import Fraction

PREFERRED_RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (672, 1568),
    (688, 1504),
    (720, 1456),
    (752, 1392),
    (800, 1328),
    (832, 1248),
    (880, 1184),
    (944, 1104),
    (1024, 1024),
    (1104, 944),
    (1184, 880),
    (1248, 832),
    (1328, 800),
    (1392, 752),
    (1456, 720),
    (1504, 688),
    (1568, 672),
)

MATCH_INPUT = "match_input_image"
ASPECT_RATIOS: tuple[str, ...] = (
    MATCH_INPUT,
    "1:1",
    "16:9",
    "21:9",
    "3:2",
    "2:3",
    "4:5",
    "5:4",
    "3:4",
    "4:3",
    "9:16",
    "9:21",
)

# Inputs larger than this on either side are refused (the gateway caps pixels long before).
MAX_INPUT_SIDE = 8192


def closest_bucket(ratio: float) -> tuple[int, int]:
    """The preferred resolution whose w/h is closest to `ratio`; ties go to the narrower one,
    as in diffusers' FluxKontextPipeline (min over (distance, w, h))."""
    _, w, h = min((abs(ratio - w / h), w, h) for w, h in PREFERRED_RESOLUTIONS)
    return w, h


def condition_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) the condition image is resized to (Lanczos, no crop)."""
    return closest_bucket(width / height)


def output_size(aspect_ratio: str, input_width: int, input_height: int) -> tuple[int, int]:
    """(w, h) of the edited image.

    `match_input_image` gives the condition image's bucket; "W:H" gives the preferred resolution
    closest to W/H (16:9 → 1392×752, 21:9 → 1568×672). BFL's alternative keeps ~1 MP floored to
    16 (16:9 → 1360×768), a size the model was not trained on; we stay on the trained buckets.
    """
    if aspect_ratio == MATCH_INPUT:
        return condition_size(input_width, input_height)
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValueError(f"unknown aspect_ratio {aspect_ratio!r}")
    w, h = aspect_ratio.split(":")
    return closest_bucket(float(Fraction(int(w), int(h))))
