"""Masked edits (inpainting) and strength: our loop against diffusers' FluxKontextInpaintPipeline
on the tiny model, CPU, float32 (docs/references.md)."""

import numpy as np
import pytest
import torch
from diffusers import FluxKontextInpaintPipeline
from PIL import Image

from kontext_engine import sampler
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.errors import EngineError
from kontext_engine.loading import KontextModel

from . import reference_pipelines as ref
from .conftest import photo

PROMPT = "replace the ball with a red apple"


@pytest.fixture(scope="module")
def pipe(model: KontextModel, tiny_dir) -> FluxKontextInpaintPipeline:  # type: ignore[no-untyped-def]
    return ref.kontext_inpaint(model, tiny_dir)


def blob(width: int, height: int) -> np.ndarray:
    """(H, W) uint8: 255 inside an off-centre ellipse, a soft edge, 0 outside."""
    y, x = np.mgrid[0:height, 0:width]
    r = np.hypot((x - 0.6 * width) / (0.3 * width), (y - 0.45 * height) / (0.35 * height))
    return (np.clip((1.2 - r) / 0.4, 0, 1) * 255).round().astype(np.uint8)


CASES = [
    pytest.param((200, 150), 1.0, (21,), id="mask, strength 1"),
    pytest.param((150, 200), 0.75, (22, 23), id="mask, strength 0.75, two seeds"),
    pytest.param((160, 160), 0.5, (24,), id="mask, strength 0.5"),
]


@pytest.mark.parametrize(("size", "strength", "seeds"), CASES)
def test_masked_edits_match_diffusers_kontext_inpaint(
    editor: Editor, pipe: FluxKontextInpaintPipeline, size: tuple[int, int], strength: float, seeds: tuple[int, ...]
) -> None:
    image, mask = photo(*size, seed=seeds[0]), blob(*size)
    ours = editor.edit(EditRequest(image, PROMPT, num_inference_steps=4, seeds=seeds, mask=mask, strength=strength))
    latents, decoded = ref.run(
        pipe, seeds, ours.width, ours.height, image=Image.fromarray(image), mask_image=Image.fromarray(mask),
        strength=strength, prompt=PROMPT, num_inference_steps=4, guidance_scale=2.5,
    )  # fmt: skip
    err = ref.max_error(ours.latents, latents)
    print(f"inpaint {size} strength {strength}: max |Δ latents| = {err:.2e}")
    assert err <= ref.TOLERANCE
    assert ref.max_error(ours.decoded, decoded) <= ref.TOLERANCE


def test_strength_without_a_mask_is_the_inpaint_loop_with_nothing_kept(
    editor: Editor, model: KontextModel, pipe: FluxKontextInpaintPipeline
) -> None:
    image = photo(180, 180, seed=3)
    calls = [0]
    hook = model.transformer.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        ours = editor.edit(EditRequest(image, PROMPT, num_inference_steps=4, seeds=(5,), strength=0.5))
    finally:
        hook.remove()
    assert calls[0] == 2  # the last half of the schedule
    white = np.full(image.shape[:2], 255, np.uint8)
    latents, _ = ref.run(
        pipe, (5,), ours.width, ours.height, image=Image.fromarray(image), mask_image=Image.fromarray(white),
        strength=0.5, prompt=PROMPT, num_inference_steps=4, guidance_scale=2.5,
    )  # fmt: skip
    err = ref.max_error(ours.latents, latents)
    print(f"strength 0.5, no mask: max |Δ latents| = {err:.2e}")
    assert err <= ref.TOLERANCE


def test_a_mask_with_a_reference_is_diffusers_image_reference(editor: Editor, pipe: FluxKontextInpaintPipeline) -> None:
    # Sides multiples of 16: diffusers picks the bucket from the size floored to 16, we from the true ratio.
    image, mask, other = photo(160, 128, seed=6), blob(160, 128), photo(96, 144, seed=7)
    ours = editor.edit(
        EditRequest(image, PROMPT, num_inference_steps=4, seeds=(8,), mask=mask, strength=0.9, references=(other,))
    )
    latents, _ = ref.run(
        pipe, (8,), ours.width, ours.height, image=Image.fromarray(image), mask_image=Image.fromarray(mask),
        image_reference=Image.fromarray(other), strength=0.9, prompt=PROMPT, num_inference_steps=4,
        guidance_scale=2.5,
    )  # fmt: skip
    err = ref.max_error(ours.latents, latents)
    print(f"inpaint with image_reference: max |Δ latents| = {err:.2e}")
    assert err <= ref.TOLERANCE


def test_an_all_keep_mask_returns_the_image_latents(editor: Editor) -> None:
    image = photo(64, 48, seed=9)
    keep = np.zeros(image.shape[:2], np.uint8)
    out = editor.edit(EditRequest(image, PROMPT, num_inference_steps=3, seeds=(1, 2), mask=keep, strength=0.8))
    clean, _, _, _ = editor.encode_condition(image)
    assert torch.equal(out.latents, clean.float().expand(2, -1, -1))


def test_fast_mode_and_batches_work_with_a_mask(editor: Editor, model: KontextModel) -> None:
    image, mask = photo(64, 64, seed=10), blob(64, 64)
    req = dict(image=image, prompt=PROMPT, num_inference_steps=8, mask=mask, strength=1.0, fast=True)
    calls = [0]
    hook = model.transformer.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        batch = editor.edit(EditRequest(**req, seeds=(3, 4)))
    finally:
        hook.remove()
    assert calls[0] == sum(sampler.fast_plan(8))
    alone = editor.edit(EditRequest(**req, seeds=(4,)))
    assert np.abs(batch.images[1].astype(int) - alone.images[0].astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"mask": blob(64, 48), "aspect_ratio": "16:9"}, "aspect_ratio"),
        ({"strength": 0.5, "aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"mask": blob(48, 64)}, "mask"),
        ({"mask": blob(64, 48).astype(np.float32)}, "mask"),
        ({"strength": 0.0}, "strength"),
        ({"strength": 1.5}, "strength"),
    ],
)
def test_bad_masks_and_strengths_are_refused(editor: Editor, overrides: dict, field: str) -> None:
    with pytest.raises(EngineError) as e:
        editor.edit(EditRequest(photo(64, 48), PROMPT, num_inference_steps=2, **overrides))
    assert e.value.code == "invalid_request" and e.value.field == field
