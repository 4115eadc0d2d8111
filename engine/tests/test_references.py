"""Several reference images (input_image_2..4): their RoPE placement (ComfyUI's ref_latents
methods), the token cap, the cache, and parity with diffusers' FluxKontextPipeline whose
transformer is handed the same extra condition tokens (CPU, float32, tiny model)."""

import numpy as np
import pytest
import torch
from diffusers import FluxKontextPipeline
from PIL import Image

from kontext_engine import conditioning, sampler
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.errors import EngineError
from kontext_engine.loading import KontextModel

from . import reference_pipelines as ref
from .conftest import photo

PROMPT = "put the cat from the second image on the sofa"
SMALL_CAP = 4116 + 600  # the largest bucket plus 600 tokens: references are scaled down (fast tests)


@pytest.fixture(scope="module")
def pipe(model: KontextModel, tiny_dir) -> FluxKontextPipeline:  # type: ignore[no-untyped-def]
    return ref.kontext(model, tiny_dir)


@pytest.fixture(scope="module")
def small(model: KontextModel) -> Editor:
    return Editor(model, None, max_condition_tokens=SMALL_CAP)


def test_offset_places_each_reference_beside_the_ones_before_at_index_1() -> None:
    # latent grids (lh, lw) of a 1024², a 672×1568 (tall) and a 1568×672 (wide) image
    grids = [(128, 128), (196, 84), (84, 196)]
    assert conditioning.placements(grids, "offset") == [(1, 0, 0), (1, 0, 64), (1, 98, 0)]
    assert conditioning.placements(grids, "index") == [(1, 0, 0), (2, 0, 0), (3, 0, 0)]


def test_offset_grids_never_overlap() -> None:
    grids = [(128, 128), (196, 84), (84, 196), (128, 128)]
    ids = conditioning.condition_ids(grids, "offset")
    positions = {tuple(p) for p in ids[:, 1:].long().tolist()}
    assert len(positions) == ids.shape[0]  # every (row, col) once: no two tokens share a position
    assert set(ids[:, 0].tolist()) == {1.0}


def test_one_image_has_todays_ids_whatever_the_method() -> None:
    for method in conditioning.REFERENCE_METHODS:
        assert torch.equal(conditioning.condition_ids([(96, 64)], method), sampler.position_ids(96, 64, 1))


def test_references_over_the_cap_are_scaled_down_by_one_factor() -> None:
    sizes = [(1024, 1024), (672, 1568), (1024, 1024)]
    fitted = conditioning.fit_sizes(sizes, 3 * 4096)
    assert fitted[0] == (1024, 1024)
    assert sum(conditioning.tokens(w, h) for w, h in fitted) <= 3 * 4096
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in fitted)
    assert fitted[1][1] > fitted[1][0]  # aspect kept
    assert conditioning.fit_sizes(sizes[:2], 3 * 4096) == sizes[:2]  # under the cap: buckets kept


def test_references_match_diffusers_with_the_same_condition_tokens(
    small: Editor, model: KontextModel, pipe: FluxKontextPipeline
) -> None:
    image, refs = photo(200, 160, seed=1), (photo(120, 160, seed=2), photo(160, 90, seed=3))
    req = EditRequest(image, PROMPT, num_inference_steps=4, seeds=(9, 10), references=refs)
    ours = small.edit(req)

    # The same reference tokens, encoded by diffusers' own image path, appended by a hook.
    sizes = conditioning.encode_sizes(req, SMALL_CAP)
    tokens, grids = [], [sampler.latent_grid(*sizes[0])]
    for im, (w, h) in zip(refs, sizes[1:], strict=True):
        x = pipe.image_processor.preprocess(pipe.image_processor.resize(Image.fromarray(im), h, w), h, w)
        z = pipe._encode_vae_image(x, generator=None)
        tokens.append(pipe._pack_latents(z, 1, 16, z.shape[2], z.shape[3]))
        grids.append((z.shape[2], z.shape[3]))
    extra = torch.cat(tokens, dim=1)
    extra_ids = conditioning.condition_ids(grids, "offset")[grids[0][0] // 2 * grids[0][1] // 2 :]

    def append(_m, args, kw):  # type: ignore[no-untyped-def]
        b = kw["hidden_states"].shape[0]
        kw["hidden_states"] = torch.cat([kw["hidden_states"], extra.expand(b, -1, -1)], dim=1)
        kw["img_ids"] = torch.cat([kw["img_ids"], extra_ids])
        return args, kw

    hook = model.transformer.register_forward_pre_hook(append, with_kwargs=True)
    try:
        latents, decoded = ref.run(
            pipe, (9, 10), ours.width, ours.height, image=Image.fromarray(image), prompt=PROMPT,
            num_inference_steps=4, guidance_scale=2.5,
        )  # fmt: skip
    finally:
        hook.remove()
    err = ref.max_error(ours.latents, latents)
    print(f"two references, offset: max |Δ latents| = {err:.2e}")
    assert err <= ref.TOLERANCE
    assert ref.max_error(ours.decoded, decoded) <= ref.TOLERANCE


def test_order_and_method_change_the_output(small: Editor) -> None:
    image, a, b = photo(64, 64, seed=4), photo(48, 64, seed=5), photo(64, 48, seed=6)

    def run(refs: tuple[np.ndarray, ...], method: str = "offset") -> torch.Tensor:
        req = EditRequest(image, PROMPT, num_inference_steps=2, seeds=(1,), references=refs, reference_method=method)
        return small.edit(req).latents

    ab, ba, ab_index = run((a, b)), run((b, a)), run((a, b), "index")
    assert not torch.equal(ab, ba)
    assert not torch.equal(ab, ab_index)
    assert torch.equal(ab, run((a, b)))


def test_without_references_the_new_path_is_todays_single_condition(small: Editor, model: KontextModel) -> None:
    """Today's loop, spelled out: [target | image tokens] with the image at index 1."""
    image = photo(80, 60, seed=7)
    ours = small.edit(EditRequest(image, PROMPT, num_inference_steps=3, seeds=(2,)))
    pooled, txt, _ = small.encode_prompt(PROMPT)
    cond, clh, clw, _ = small.encode_condition(image)
    lh, lw = sampler.latent_grid(ours.width, ours.height)
    x = sampler.pack(sampler.draw_noise([2], lh, lw))
    ids = torch.cat([sampler.position_ids(lh, lw, 0), sampler.position_ids(clh, clw, 1)])
    sigmas = sampler.schedule(3, x.shape[1], model.scheduler_config)
    old = sampler.denoise(model.transformer, x, cond, txt, pooled, ids, torch.zeros(512, 3), sigmas, 2.5)
    assert torch.equal(ours.latents, old)


def test_each_reference_is_cached_by_its_own_hash(small: Editor, model: KontextModel) -> None:
    image, r1, r2, r3 = (photo(64, 64, seed=s) for s in (11, 12, 13, 14))
    encodes = [0]
    hook = model.vae.encoder.register_forward_hook(lambda *_: encodes.__setitem__(0, encodes[0] + 1))
    try:
        first = small.edit(EditRequest(image, PROMPT, num_inference_steps=1, seeds=(1,), references=(r1, r2)))
        second = small.edit(EditRequest(image, PROMPT, num_inference_steps=1, seeds=(1,), references=(r2, r3)))
    finally:
        hook.remove()
    assert first.cache == {
        "prompt": first.cache["prompt"],
        "condition": False,
        "input_image_2": False,
        "input_image_3": False,
    }
    assert second.cache["condition"] is True and second.cache["input_image_2"] is True
    assert second.cache["input_image_3"] is False
    assert encodes[0] == 3 + 1


def test_fast_mode_and_batches_work_with_references(small: Editor) -> None:
    image, r = photo(64, 64, seed=15), photo(64, 48, seed=16)
    req = dict(image=image, prompt=PROMPT, num_inference_steps=6, references=(r,), fast=True)
    batch = small.edit(EditRequest(**req, seeds=(3, 4)))
    alone = small.edit(EditRequest(**req, seeds=(4,)))
    assert np.abs(batch.images[1].astype(int) - alone.images[0].astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"references": tuple(photo(32, 32, seed=s) for s in range(4))}, "input_image_2"),
        ({"references": (photo(32, 32),), "reference_method": "uxo"}, "reference_method"),
    ],
)
def test_bad_references_are_refused(small: Editor, overrides: dict, field: str) -> None:
    with pytest.raises(EngineError) as e:
        small.edit(EditRequest(photo(32, 32), PROMPT, num_inference_steps=1, **overrides))
    assert e.value.code == "invalid_request" and e.value.field == field


def test_the_cap_must_hold_one_image(model: KontextModel) -> None:
    with pytest.raises(ValueError, match="max_condition_tokens"):
        Editor(model, None, max_condition_tokens=1000)
