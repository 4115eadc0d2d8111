"""Our loop against diffusers' FluxKontextPipeline on the tiny model, CPU, float32."""

import pytest
import torch
from diffusers import FluxKontextPipeline
from PIL import Image

from kontext_engine.editor import Editor, EditRequest
from kontext_engine.loading import KontextModel

from . import reference_pipelines as ref
from .conftest import photo

TOLERANCE = ref.TOLERANCE


@pytest.fixture(scope="module")
def reference(model: KontextModel, tiny_dir) -> FluxKontextPipeline:
    return ref.kontext(model, tiny_dir)


CASES = [
    pytest.param((256, 256), "match_input_image", (11,), id="square input"),
    pytest.param((400, 300), "match_input_image", (12,), id="non-square input, match_input_image"),
    pytest.param((300, 400), "16:9", (13,), id="explicit aspect ratio"),
    pytest.param((320, 240), "1:1", (1, 2), id="two generations in one batch"),
]


@pytest.mark.parametrize(("size", "aspect_ratio", "seeds"), CASES)
def test_matches_diffusers_flux_kontext_pipeline(
    editor: Editor, reference: FluxKontextPipeline, size: tuple[int, int], aspect_ratio: str, seeds: tuple[int, ...]
) -> None:
    image = photo(*size)
    ours = editor.edit(
        EditRequest(image, "make the sky purple", aspect_ratio, num_inference_steps=4, guidance=2.5, seeds=seeds)
    )

    final: dict[str, torch.Tensor] = {}

    def keep_latents(pipe, i, t, kwargs):  # type: ignore[no-untyped-def]
        final["latents"] = kwargs["latents"].clone()
        return kwargs

    theirs = reference(
        image=Image.fromarray(image),
        prompt="make the sky purple",
        height=ours.height,
        width=ours.width,
        max_area=ours.width * ours.height,  # keep the bucket: diffusers would otherwise floor to 1 MP
        num_inference_steps=4,
        guidance_scale=2.5,
        num_images_per_prompt=len(seeds),
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        output_type="pt",
        callback_on_step_end=keep_latents,
    ).images

    assert ours.latents.shape == final["latents"].shape
    assert (ours.latents - final["latents"]).abs().max().item() <= TOLERANCE
    assert ours.decoded.shape == theirs.shape == (len(seeds), 3, ours.height, ours.width)
    assert (ours.decoded - theirs).abs().max().item() <= TOLERANCE
