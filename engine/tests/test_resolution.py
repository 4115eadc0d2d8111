import pytest

from kontext_engine.resolution import ASPECT_RATIOS, PREFERRED_RESOLUTIONS, condition_size, output_size


@pytest.mark.parametrize(("w", "h"), PREFERRED_RESOLUTIONS)
def test_every_preferred_resolution_is_its_own_bucket(w: int, h: int) -> None:
    assert condition_size(w, h) == (w, h)
    assert condition_size(w // 4, h // 4) == (w, h)  # same shape, smaller: same bucket


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((1, 1), (1024, 1024)),
        ((401, 299), (1184, 880)),  # 1.341 → 1184/880 = 1.345
        ((299, 401), (880, 1184)),
        ((1920, 1080), (1392, 752)),  # 16:9 photo
        ((4000, 10), (1568, 672)),  # far wider than any bucket: the widest
        ((10, 4000), (672, 1568)),
        ((3000, 2000), (1248, 832)),  # 3:2 exactly
    ],
)
def test_odd_sizes_pick_the_closest_aspect_ratio(size: tuple[int, int], bucket: tuple[int, int]) -> None:
    assert condition_size(*size) == bucket


def test_ties_go_to_the_narrower_bucket_as_in_diffusers() -> None:
    # Halfway between 1024/1024 and 1104/944 in aspect ratio.
    ratio = (1.0 + 1104 / 944) / 2
    w, h = condition_size(int(ratio * 10_000), 10_000)
    assert (w, h) in {(1024, 1024), (1104, 944)}
    assert (w, h) == min(((1024, 1024), (1104, 944)), key=lambda b: (abs(ratio - b[0] / b[1]), b[0], b[1]))


EXPECTED_OUTPUT = {
    "1:1": (1024, 1024),
    "16:9": (1392, 752),
    "21:9": (1568, 672),
    "3:2": (1248, 832),
    "2:3": (832, 1248),
    "4:5": (944, 1104),
    "5:4": (1104, 944),
    "3:4": (880, 1184),
    "4:3": (1184, 880),
    "9:16": (752, 1392),
    "9:21": (672, 1568),
}


@pytest.mark.parametrize("aspect_ratio", ASPECT_RATIOS)
def test_output_size_for_every_aspect_ratio(aspect_ratio: str) -> None:
    w, h = output_size(aspect_ratio, 800, 600)
    expected = condition_size(800, 600) if aspect_ratio == "match_input_image" else EXPECTED_OUTPUT[aspect_ratio]
    assert (w, h) == expected
    assert w % 16 == 0 and h % 16 == 0
    assert 0.9e6 < w * h < 1.1e6  # about one megapixel


def test_all_twelve_aspect_ratios_are_known() -> None:
    assert len(ASPECT_RATIOS) == 12 and set(EXPECTED_OUTPUT) | {"match_input_image"} == set(ASPECT_RATIOS)


def test_unknown_aspect_ratio_is_refused() -> None:
    with pytest.raises(ValueError, match="7:5"):
        output_size("7:5", 100, 100)
