"""The hot path's promises: condition tokens untouched, seeds reproducible, caches skip work,
safety never lets a flagged image out, previews stay small."""

from pathlib import Path

import numpy as np
import pytest
import torch

from kontext_engine.editor import Editor, EditRequest
from kontext_engine.errors import EngineError
from kontext_engine.loading import KontextModel, load_model
from kontext_engine.safety import SafetyChecker
from kontext_engine.tiny import generate

from .conftest import CPU, photo


def request(**overrides) -> EditRequest:  # type: ignore[no-untyped-def]
    fields = {"image": photo(64, 48), "prompt": "add a red hat", "num_inference_steps": 2, "seeds": (5,)}
    return EditRequest(**{**fields, **overrides})


def test_condition_tokens_are_never_updated(editor: Editor, model: KontextModel) -> None:
    seen: list[torch.Tensor] = []
    hook = model.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["hidden_states"].clone()), with_kwargs=True
    )
    try:
        req = request(image=photo(48, 64, seed=3), num_inference_steps=3)
        editor.edit(req)
    finally:
        hook.remove()
    condition, _, _, _ = editor.encode_condition(req.image)
    n_condition = condition.shape[1]
    assert len(seen) == 3
    for hidden in seen:
        assert torch.equal(hidden[:, -n_condition:], condition)  # identical at every step
    assert not torch.equal(seen[0][:, :-n_condition], seen[-1][:, :-n_condition])  # target tokens move


def test_same_seed_gives_identical_bytes_and_another_seed_another_image(editor: Editor) -> None:
    a, b = editor.edit(request(seeds=(5,))), editor.edit(request(seeds=(5,)))
    c = editor.edit(request(seeds=(6,)))
    assert a.images[0].tobytes() == b.images[0].tobytes()
    assert a.images[0].tobytes() != c.images[0].tobytes()
    assert a.images[0].shape == (a.height, a.width, 3) and a.images[0].dtype == np.uint8


def test_a_seed_gives_the_same_image_alone_or_in_a_batch(editor: Editor) -> None:
    alone = editor.edit(request(seeds=(8,)))
    batch = editor.edit(request(seeds=(7, 8)))
    assert len(batch.images) == 2
    assert np.abs(batch.images[1].astype(int) - alone.images[0].astype(int)).max() <= 1


def test_caches_skip_the_vae_encode_and_the_text_encoders(editor: Editor, model: KontextModel) -> None:
    calls = {"vae": 0, "clip": 0, "t5": 0}

    def count(name: str):  # type: ignore[no-untyped-def]
        return lambda *_: calls.__setitem__(name, calls[name] + 1)

    hooks = [
        model.vae.encoder.register_forward_hook(count("vae")),
        model.clip.register_forward_hook(count("clip")),
        model.t5.register_forward_hook(count("t5")),
    ]
    try:
        image = photo(80, 60, seed=42)
        first = editor.edit(request(image=image, prompt="a prompt seen once"))
        other_prompt = editor.edit(request(image=image, prompt="another prompt"))
        same_prompt = editor.edit(request(image=photo(60, 80, seed=43), prompt="another prompt"))
    finally:
        for h in hooks:
            h.remove()
    assert first.cache == {"prompt": False, "condition": False}
    assert other_prompt.cache == {"prompt": False, "condition": True}
    assert same_prompt.cache == {"prompt": True, "condition": False}
    # 3 edits: the VAE encoder ran for 2 images, the text encoders for 2 prompts.
    assert calls == {"vae": 2, "clip": 2, "t5": 2}


def test_step_callback_reports_every_step_with_a_small_preview(editor: Editor) -> None:
    steps: list[tuple[int, int, int, int, int]] = []
    editor.edit(request(num_inference_steps=3), lambda s, n, p: steps.append((s, n, *_size(p()))))
    assert [(s, n) for s, n, *_ in steps] == [(1, 3), (2, 3), (3, 3)]
    for *_, nbytes, w, h in steps:
        assert nbytes < 8_000 and max(w, h) <= 64


def _size(preview: tuple[bytes, int, int]) -> tuple[int, int, int]:
    data, w, h = preview
    assert data[:2] == b"\xff\xd8"  # JPEG
    return len(data), w, h


def test_cancelling_from_the_callback_stops_between_steps(editor: Editor) -> None:
    seen: list[int] = []

    def cancel_at_two(step: int, total: int, _preview) -> None:  # type: ignore[no-untyped-def]
        seen.append(step)
        if step == 2:
            raise EngineError("cancelled", "stop")

    with pytest.raises(EngineError) as err:
        editor.edit(request(num_inference_steps=5), cancel_at_two)
    assert err.value.code == "cancelled" and seen == [1, 2]


@pytest.fixture(scope="module")
def flagging_editor(tmp_path_factory: pytest.TempPathFactory, model: KontextModel) -> Editor:
    flagged = generate(tmp_path_factory.mktemp("models") / "flagging", safety_verdict="flag")
    return Editor(model, SafetyChecker(flagged / "safety_checker", CPU))


def test_a_flagged_output_is_never_returned(flagging_editor: Editor) -> None:
    with pytest.raises(EngineError) as err:
        flagging_editor.edit(request())
    assert err.value.code == "content_flagged"
    assert "nsfw score" in err.value.message


def test_disable_safety_checker_returns_the_image(flagging_editor: Editor) -> None:
    result = flagging_editor.edit(request(disable_safety_checker=True))
    assert len(result.images) == 1


def test_the_passing_classifier_scores_low(editor: Editor) -> None:
    assert editor.safety is not None
    assert editor.safety.scores([photo(32, 32)])[0] < 0.01


def test_an_explicit_float32_load_on_cpu_matches(tiny_dir: Path) -> None:
    m = load_model(tiny_dir, CPU, torch.float32)
    assert m.variant == "tiny" and m.transformer_source == "diffusers"
    assert next(m.transformer.parameters()).dtype == torch.float32
