"""full_resolution: the server's step after Editor.edit for output_resolution input (no model here:
the "output" is the input as the model saw it, edited in a known box)."""

from pathlib import Path

import numpy as np
import pytest

from kontext_engine import conditioning, full_resolution
from kontext_engine.editor import EditRequest
from kontext_engine.errors import EngineError

from .conftest import photo

TOKENS = conditioning.DEFAULT_MAX_CONDITION_TOKENS


def edited(seen: np.ndarray) -> np.ndarray:
    out = seen.copy()
    h, w = out.shape[:2]
    out[h // 4 : h // 2, w // 4 : w // 2] = (250, 20, 20)  # a red box over 1/16 of the frame
    return out


def test_outputs_come_back_at_the_input_size_with_the_mask(tmp_path: Path) -> None:
    original = photo(1600, 1200)
    req = EditRequest(original, "p", output_resolution="input")
    seen = full_resolution.seen_by_model(req, TOKENS)
    assert seen.shape[:2] == conditioning.encode_sizes(req, TOKENS)[0][::-1]
    images, fields, ms = full_resolution.put_back(req, [edited(seen), seen], tmp_path, TOKENS)
    assert [im.shape for im in images] == [(1200, 1600, 3)] * 2 and ms >= 0
    assert fields[0]["width"] == 1600 and fields[0]["height"] == 1200
    assert fields[0]["changed_fraction"] == pytest.approx(1 / 16, rel=0.1) and fields[0]["whole_frame"] is False
    mask = np.frombuffer(Path(fields[0]["mask_path"]).read_bytes(), np.uint8).reshape(1200, 1600)
    assert mask[450, 600] == 255 and mask[1000, 1400] == 0
    assert np.array_equal(images[0][mask == 0], original[mask == 0])  # unedited pixels, bit for bit
    assert fields[1]["changed_fraction"] == 0 and np.array_equal(images[1], original)  # nothing edited
    assert not list(tmp_path.glob(".*tmp"))


def test_without_preserve_unedited_the_output_is_only_upscaled(tmp_path: Path) -> None:
    req = EditRequest(photo(800, 600), "p", output_resolution="input", preserve_unedited=False)
    seen = full_resolution.seen_by_model(req, TOKENS)
    images, fields, _ = full_resolution.put_back(req, [edited(seen)], tmp_path, TOKENS)
    assert images[0].shape == (600, 800, 3)
    assert fields == [{"width": 800, "height": 600}]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"preserve_unedited": True}, "preserve_unedited"),
        ({"output_resolution": "input", "aspect_ratio": "1:1"}, "aspect_ratio"),
    ],
)
def test_requests_it_cannot_serve_are_refused_naming_the_field(kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(EngineError) as e:
        full_resolution.check(EditRequest(photo(40, 30), "p", **kwargs))
    assert e.value.code == "invalid_request" and e.value.field == field


def test_the_editor_hands_back_the_input_as_it_resized_it(editor) -> None:  # type: ignore[no-untyped-def]
    image = photo(640, 480, seed=3)
    req = EditRequest(image, "p", output_resolution="input")
    editor.conditions.clear()  # a cache hit would not resize
    editor.encode_condition(image, conditioning.encode_sizes(req, editor.max_condition_tokens)[0])
    seen = full_resolution.seen_by_model(req, editor.max_condition_tokens, editor.resized)
    assert seen is editor._last_resized[2]  # no second Lanczos pass
    assert np.array_equal(seen, full_resolution.seen_by_model(req, editor.max_condition_tokens))
    assert editor.resized(image.copy(), seen.shape[1::-1]) is not seen  # another array: resized anew
