"""What an edit is conditioned on, beyond the prompt: which images, at what size, where in RoPE
space, and the inpainting mask. Plain functions; the Editor encodes and caches (docs/references.md).

A request has up to four images: `image` (input_image, the one being edited) and up to three
`references` (input_image_2..4). Each is resized to its own bucket (resolution.condition_size).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import sampler
from .errors import EngineError
from .resolution import MATCH_INPUT, condition_size, output_size

if TYPE_CHECKING:
    from .editor import EditRequest

MAX_REFERENCES = 3  # input_image_2..input_image_4
REFERENCE_METHODS = ("offset", "index")
# About three 1 MP images. Attention grows with the square of the sequence (512 text + 4096
# target + condition tokens): a plain edit is 8704 tokens; a second image makes it 12800 (2.2×
# the attention), a third 16896 (3.8×, the cap); a fourth is scaled down to stay at the cap.
DEFAULT_MAX_CONDITION_TOKENS = 3 * 4096
TOKEN_PIXELS = sampler.VAE_SCALE * sampler.PATCH  # one token covers 16×16 pixels


def tokens(width: int, height: int) -> int:
    """Packed tokens of an image of width × height pixels."""
    lh, lw = sampler.latent_grid(width, height)
    return (lh // 2) * (lw // 2)


def fit_sizes(sizes: list[tuple[int, int]], max_tokens: int) -> list[tuple[int, int]]:
    """(w, h) each condition image is encoded at. sizes[0] (the edited image) keeps its bucket;
    if the references' buckets would take the total over max_tokens, every reference is scaled
    down by one factor (aspect kept, sides floored to 16 pixels) so the total fits."""
    first, refs = sizes[0], sizes[1:]
    budget = max_tokens - tokens(*first)
    wanted = sum(tokens(w, h) for w, h in refs)
    if wanted <= budget:
        return list(sizes)
    if budget < len(refs):
        raise EngineError(
            "invalid_request",
            f"no room for {len(refs)} reference image(s): the first image takes {tokens(*first)} of the "
            f"{max_tokens} condition tokens this engine allows",
            field="input_image_2",
        )
    f = math.sqrt(budget / wanted)
    snap = lambda v: max(TOKEN_PIXELS, int(v * f) // TOKEN_PIXELS * TOKEN_PIXELS)  # noqa: E731
    fitted = [(snap(w), snap(h)) for w, h in refs]
    # A side floored up to one token (a very long, thin reference) can take the total over by a
    # few tokens: the reference with the most tokens loses a row or column of them until it fits.
    while sum(tokens(w, h) for w, h in fitted) > budget:
        i = max(range(len(fitted)), key=lambda k: tokens(*fitted[k]))
        w, h = fitted[i]
        fitted[i] = (w - TOKEN_PIXELS, h) if w >= h else (w, h - TOKEN_PIXELS)
    return [first, *fitted]


def placements(grids: list[tuple[int, int]], method: str) -> list[tuple[int, int, int]]:
    """(index, row0, col0) of each condition image's RoPE grid, from its latent grid (lh, lw), as
    ComfyUI's Flux model places ref_latents. `offset`: all at index 1, each one beside the union
    of the ones before (to the right when that keeps the union squarer, else below; the first at
    (0, 0)), offsets counted in latent cells then rounded to tokens. `index`: index 1, 2, 3, ...
    each at (0, 0)."""
    out: list[tuple[int, int, int]] = []
    h = w = index = 0
    for lh, lw in grids:
        row0 = col0 = 0
        if method == "index":
            index += 1
        else:
            index = 1
            if lh + h > lw + w:
                col0 = w
            else:
                row0 = h
            h, w = max(h, lh + row0), max(w, lw + col0)
        out.append((index, (row0 + 1) // 2, (col0 + 1) // 2))
    return out


def condition_ids(grids: list[tuple[int, int]], method: str) -> Tensor:
    """(Lc, 3) position ids of the condition tokens, in the order the grids are concatenated."""
    ids = [
        sampler.position_ids(lh, lw, i, r, c)
        for (lh, lw), (i, r, c) in zip(grids, placements(grids, method), strict=True)
    ]
    return torch.cat(ids) if ids else torch.zeros(0, 3)


def mask_tokens(mask: np.ndarray, width: int, height: int) -> Tensor:
    """(1, L, 64) float32 in {0, 1} for a (H, W) uint8 mask (255 = change): resized (Lanczos) to
    the output, binarised at 0.5, nearest-sampled to the latent grid and packed, as diffusers'
    mask processor."""
    resized = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.LANCZOS))
    m = torch.from_numpy(resized.astype(np.float32) / 255.0)[None, None]
    m = (m >= 0.5).float()
    lh, lw = sampler.latent_grid(width, height)
    m = torch.nn.functional.interpolate(m, size=(lh, lw))
    return sampler.pack(m.repeat(1, sampler.LATENT_CHANNELS, 1, 1))


def uses_true_cfg(req: EditRequest) -> bool:
    """As diffusers: a second pass only with a negative prompt and a scale above 1."""
    return req.negative_prompt is not None and req.true_cfg_scale > 1


def starts_from_image(req: EditRequest) -> bool:
    """Whether the edit starts from the image's latents (a mask, or strength below 1)."""
    return req.mask is not None or req.strength < 1


def invalid(message: str, field: str) -> EngineError:
    return EngineError("invalid_request", message, field=field)


def check(req: EditRequest) -> None:
    """Raises invalid_request, naming the field, for a combination the engine cannot run."""
    if len(req.references) > MAX_REFERENCES:
        raise invalid(f"at most {MAX_REFERENCES} reference images (input_image_2..4)", "input_image_2")
    if req.reference_method not in REFERENCE_METHODS:
        raise invalid(f"reference_method must be one of {REFERENCE_METHODS}", "reference_method")
    if not (math.isfinite(req.true_cfg_scale) and req.true_cfg_scale >= 1):
        raise invalid("true_cfg_scale must be 1 (off) or more", "true_cfg_scale")
    if not (math.isfinite(req.strength) and 0 < req.strength <= 1):
        raise invalid("strength must be in (0, 1]", "strength")
    if req.image is None:
        if req.aspect_ratio == MATCH_INPUT:
            raise invalid("without an input image, aspect_ratio must be W:H, not match_input_image", "aspect_ratio")
        if req.references:
            raise invalid("reference images (input_image_2..4) need an input_image", "input_image")
        if req.mask is not None:
            raise invalid("a mask needs an input_image", "mask")
        if req.strength < 1:
            raise invalid("strength below 1 needs an input_image to start from", "strength")
        return
    if starts_from_image(req):
        what = "a masked edit" if req.mask is not None else "strength below 1"
        if req.aspect_ratio != MATCH_INPUT:
            raise invalid(
                f"{what} keeps the input image's geometry: aspect_ratio must be match_input_image", "aspect_ratio"
            )
        if sampler.strength_start(req.num_inference_steps, req.strength) >= req.num_inference_steps:
            raise invalid(f"strength {req.strength} leaves no step of {req.num_inference_steps} to run", "strength")
    if req.mask is not None:
        if req.mask.ndim != 2 or req.mask.dtype != np.uint8 or req.mask.shape != req.image.shape[:2]:
            raise invalid(
                f"the mask must be (H, W) uint8 at the input image's size {req.image.shape[1]}x{req.image.shape[0]}",
                "mask",
            )


def target_size(req: EditRequest) -> tuple[int, int]:
    """(w, h) of the output, after checking the request."""
    check(req)
    if req.image is None:
        return output_size(req.aspect_ratio, 0, 0)
    return output_size(req.aspect_ratio, req.image.shape[1], req.image.shape[0])


def encode_sizes(req: EditRequest, max_tokens: int) -> list[tuple[int, int]]:
    """(w, h) of [image, *references] as encoded (fit_sizes over their buckets)."""
    assert req.image is not None
    buckets = [condition_size(im.shape[1], im.shape[0]) for im in (req.image, *req.references)]
    return fit_sizes(buckets, max_tokens)
