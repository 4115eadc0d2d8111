"""`output_resolution: input`: each output put back at the input's own size, after `Editor.edit`.

The Editor always works at the bucket. Here, for each output image: with `preserve_unedited` (the
default) `preserve.compose_full_resolution` keeps the original's pixels wherever the edit changed
nothing and returns the change mask; without it the output is only upscaled (Lanczos) to the
input's size. docs/preserve.md says how.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import conditioning
from .editor import EditRequest, resize_condition
from .errors import EngineError
from .preserve import compose_full_resolution


@dataclass
class FullSize:
    image: np.ndarray  # (H, W, 3) uint8 at the input's size
    mask: np.ndarray | None  # (H, W) uint8 change mask (None without preserve_unedited)
    changed_fraction: float | None
    whole_frame: bool | None


def wanted(req: EditRequest) -> bool:
    return req.output_resolution == "input"


def check(req: EditRequest) -> None:
    """Before the edit runs: the request can be put back at the input's size."""
    if not wanted(req):
        if req.preserve_unedited is not None:
            raise EngineError(
                "invalid_request",
                "preserve_unedited applies only with output_resolution input",
                "preserve_unedited",
            )
        return
    if req.image is None:
        raise EngineError("invalid_request", "output_resolution input needs an input image", "output_resolution")
    if req.aspect_ratio != "match_input_image":
        raise EngineError(
            "invalid_request",
            f"output_resolution input needs aspect_ratio match_input_image, got {req.aspect_ratio}",
            "aspect_ratio",
        )


Resize = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def seen_by_model(req: EditRequest, max_condition_tokens: int, resize: Resize = resize_condition) -> np.ndarray:
    """The input as the model saw it: resized to the size Editor.encode_conditions encoded it at
    (`resize`: Editor.resized, which hands back the editor's own copy when it has it)."""
    assert req.image is not None
    size = conditioning.encode_sizes(req, max_condition_tokens)[0]
    return resize(req.image, size)


def full_size(req: EditRequest, seen: np.ndarray, output: np.ndarray) -> FullSize:
    """One output at the input's size."""
    assert req.image is not None
    original = req.image
    if output.shape[:2] != seen.shape[:2]:  # cannot happen with match_input_image: checked before
        raise EngineError("internal", f"output {output.shape[:2]} is not at the input's bucket {seen.shape[:2]}")
    if req.preserve_unedited is False:
        h, w = original.shape[:2]
        up = np.asarray(Image.fromarray(output).resize((w, h), Image.Resampling.LANCZOS))
        return FullSize(up, None, None, None)
    limit = req.mask  # the user's mask bounds what may change
    p = compose_full_resolution(original, seen, output, limit)
    return FullSize(p.image, p.mask, p.changed_fraction, p.whole_frame)


def put_back(
    req: EditRequest,
    outputs: list[np.ndarray],
    directory: Path,
    max_condition_tokens: int,
    resize: Resize = resize_condition,
) -> tuple[list[np.ndarray], list[dict[str, Any]], float]:
    """Every output at the input's size; the result event's fields of each (width, height and,
    with preserve_unedited, mask_path written into `directory`, changed_fraction, whole_frame);
    and the ms it took."""
    t = time.perf_counter()
    seen = seen_by_model(req, max_condition_tokens, resize)
    images, fields = [], []
    for i, out in enumerate(outputs):
        done = full_size(req, seen, out)
        images.append(done.image)
        fields.append(image_fields(directory, i, done))
    return images, fields, round((time.perf_counter() - t) * 1000, 1)


def write_mask(directory: Path, i: int, mask: np.ndarray) -> Path:
    """The change mask beside output i: raw 8-bit greyscale, width × height bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{i}.mask"
    tmp = directory / f".{i}.mask.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(np.ascontiguousarray(mask).data)
    os.replace(tmp, final)
    return final


def image_fields(directory: Path, i: int, done: FullSize) -> dict[str, Any]:
    """The result event's fields for output i beyond path and seed."""
    h, w = done.image.shape[:2]
    fields: dict[str, Any] = {"width": w, "height": h}
    if done.mask is not None:
        fields["mask_path"] = str(write_mask(directory, i, done.mask))
        fields["changed_fraction"] = round(float(done.changed_fraction or 0.0), 6)
        fields["whole_frame"] = bool(done.whole_frame)
    return fields
