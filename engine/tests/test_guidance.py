"""Negative prompt and true classifier-free guidance, and text-to-image (no input image): our
loop against diffusers' FluxKontextPipeline on the tiny model, CPU, float32."""

import pytest
import torch
from diffusers import FluxKontextPipeline
from PIL import Image

from kontext_engine.editor import Editor, EditRequest
from kontext_engine.errors import EngineError
from kontext_engine.loading import KontextModel

from . import reference_pipelines as ref
from .conftest import photo

PROMPT = "make the sky purple"
NEGATIVE = "blurry, low quality"


@pytest.fixture(scope="module")
def pipe(model: KontextModel, tiny_dir) -> FluxKontextPipeline:  # type: ignore[no-untyped-def]
    return ref.kontext(model, tiny_dir)


def count_transformer_calls(model: KontextModel) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    calls = [0]
    hook = model.transformer.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, hook


@pytest.mark.parametrize("seeds", [(21,), (3, 4)], ids=["one seed", "two seeds"])
def test_negative_prompt_and_true_cfg_match_diffusers(
    editor: Editor, model: KontextModel, pipe: FluxKontextPipeline, seeds: tuple[int, ...]
) -> None:
    image = photo(200, 150, seed=seeds[0])
    calls, hook = count_transformer_calls(model)
    try:
        ours = editor.edit(
            EditRequest(image, PROMPT, num_inference_steps=4, seeds=seeds, negative_prompt=NEGATIVE, true_cfg_scale=3.0)
        )
    finally:
        hook.remove()
    assert calls[0] == 2 * 4  # the transformer runs twice per step
    latents, decoded = ref.run(
        pipe,
        seeds,
        ours.width,
        ours.height,
        image=Image.fromarray(image),
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        true_cfg_scale=3.0,
        num_inference_steps=4,
        guidance_scale=2.5,
    )
    err = ref.max_error(ours.latents, latents)
    print(f"true cfg, seeds {seeds}: max |Δ latents| = {err:.2e}")
    assert err <= ref.TOLERANCE
    assert ref.max_error(ours.decoded, decoded) <= ref.TOLERANCE
    assert "negative_prompt" in ours.cache


def test_the_negative_prompt_changes_the_output_and_is_cached(editor: Editor) -> None:
    image = photo(64, 48, seed=1)
    base = EditRequest(image, PROMPT, num_inference_steps=2, seeds=(2,))
    plain = editor.edit(base)
    first = editor.edit(EditRequest(**{**base.__dict__, "negative_prompt": "a cached negative", "true_cfg_scale": 2.0}))
    again = editor.edit(EditRequest(**{**base.__dict__, "negative_prompt": "a cached negative", "true_cfg_scale": 2.0}))
    assert not torch.equal(plain.latents, first.latents)
    assert torch.equal(first.latents, again.latents)
    assert first.cache["negative_prompt"] is False and again.cache["negative_prompt"] is True


def test_without_a_negative_prompt_or_at_scale_1_one_pass_runs_as_diffusers(
    editor: Editor, model: KontextModel
) -> None:
    """diffusers' rule: true CFG needs a negative prompt *and* true_cfg_scale > 1; otherwise the
    scale is ignored. An empty string is a negative prompt."""
    image = photo(64, 48, seed=2)
    base = EditRequest(image, PROMPT, num_inference_steps=2, seeds=(3,))
    plain = editor.edit(base)
    calls, hook = count_transformer_calls(model)
    try:
        no_negative = editor.edit(EditRequest(**{**base.__dict__, "true_cfg_scale": 4.0}))
        scale_one = editor.edit(EditRequest(**{**base.__dict__, "negative_prompt": NEGATIVE}))
        assert calls[0] == 2 + 2
        editor.edit(EditRequest(**{**base.__dict__, "negative_prompt": "", "true_cfg_scale": 4.0}))
        assert calls[0] == 2 + 2 + 4
    finally:
        hook.remove()
    assert torch.equal(plain.latents, no_negative.latents)
    assert torch.equal(plain.latents, scale_one.latents)
    assert "negative_prompt" not in plain.cache


def test_fast_mode_with_true_cfg_runs_two_passes_on_planned_steps_only(editor: Editor, model: KontextModel) -> None:
    image = photo(64, 48, seed=4)
    calls, hook = count_transformer_calls(model)
    try:
        editor.edit(
            EditRequest(
                image, PROMPT, num_inference_steps=10, seeds=(1,), fast=True, negative_prompt=NEGATIVE, true_cfg_scale=2
            )
        )
    finally:
        hook.remove()
    from kontext_engine.sampler import fast_plan

    assert calls[0] == 2 * sum(fast_plan(10))


def test_true_cfg_scale_below_1_is_refused(editor: Editor) -> None:
    with pytest.raises(EngineError) as e:
        editor.edit(EditRequest(photo(64, 48), PROMPT, num_inference_steps=2, negative_prompt="x", true_cfg_scale=0.5))
    assert e.value.code == "invalid_request" and e.value.field == "true_cfg_scale"


# Text-to-image: no input image, no condition tokens, the size from aspect_ratio.


@pytest.mark.parametrize(
    ("aspect_ratio", "seeds", "cfg"),
    [
        pytest.param("1:1", (31,), 1.0, id="1:1"),
        pytest.param("16:9", (5, 6), 1.0, id="16:9, two seeds"),
        pytest.param("3:4", (7,), 2.5, id="3:4 with true cfg"),
    ],
)
def test_text_to_image_matches_diffusers_without_an_image(
    editor: Editor,
    model: KontextModel,
    pipe: FluxKontextPipeline,
    aspect_ratio: str,
    seeds: tuple[int, ...],
    cfg: float,
) -> None:
    seen: list[int] = []
    hook = model.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["hidden_states"].shape[1]), with_kwargs=True
    )
    try:
        ours = editor.edit(
            EditRequest(
                None,
                PROMPT,
                aspect_ratio,
                num_inference_steps=4,
                seeds=seeds,
                negative_prompt=NEGATIVE if cfg > 1 else None,
                true_cfg_scale=cfg,
            )
        )
    finally:
        hook.remove()
    assert set(seen) == {(ours.width // 16) * (ours.height // 16)}  # target tokens only
    latents, decoded = ref.run(
        pipe,
        seeds,
        ours.width,
        ours.height,
        image=None,
        prompt=PROMPT,
        negative_prompt=NEGATIVE if cfg > 1 else None,
        true_cfg_scale=cfg,
        num_inference_steps=4,
        guidance_scale=2.5,
    )
    err = ref.max_error(ours.latents, latents)
    print(f"text-to-image {aspect_ratio}: max |Δ latents| = {err:.2e}")
    assert err <= ref.TOLERANCE
    assert ref.max_error(ours.decoded, decoded) <= ref.TOLERANCE
    assert ours.cache["condition"] is False


def test_text_to_image_fast_mode_runs(editor: Editor) -> None:
    out = editor.edit(EditRequest(None, PROMPT, "1:1", num_inference_steps=6, seeds=(1, 2), fast=True))
    assert len(out.images) == 2 and out.images[0].shape == (1024, 1024, 3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"aspect_ratio": "match_input_image"}, "aspect_ratio"),
        ({"references": (photo(32, 32),)}, "input_image"),
        ({"strength": 0.5}, "strength"),
    ],
)
def test_text_to_image_refuses_what_needs_an_input_image(editor: Editor, overrides: dict, field: str) -> None:
    fields = {"image": None, "prompt": PROMPT, "aspect_ratio": "1:1", "num_inference_steps": 2, **overrides}
    with pytest.raises(EngineError) as e:
        editor.edit(EditRequest(**fields))
    assert e.value.code == "invalid_request" and e.value.field == field
