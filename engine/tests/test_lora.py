"""LoRA adapters: the four file formats on the tiny model, the doctor, parity with diffusers'
load_lora_weights, the low-rank path beside every kind of base layer, and the directory's rules."""

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor

from kontext_engine import fp8, lora
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.errors import EngineError
from kontext_engine.loading import KontextModel
from kontext_engine.lora import LoraLibrary, LoraSpec

from .conftest import photo

TOLERANCE = 1e-4
RANK = 4
WIDTH, MLP = 32, 128  # the tiny model's inner and MLP widths


def bfl_modules(linear1: bool = True, outer: bool = True) -> list[tuple[str, int, int]]:
    """(BFL name, in, out) of the tiny model's LoRA-able layers, as BFL's checkpoint names them;
    `outer`: the embedders and the final projection too."""
    mods = [("img_in", 64, WIDTH), ("txt_in", 32, WIDTH), ("final_layer.linear", WIDTH, 64)] if outer else []
    for i in range(2):
        for s in ("img", "txt"):
            mods += [
                (f"double_blocks.{i}.{s}_attn.qkv", WIDTH, 3 * WIDTH),
                (f"double_blocks.{i}.{s}_attn.proj", WIDTH, WIDTH),
                (f"double_blocks.{i}.{s}_mlp.0", WIDTH, MLP),
                (f"double_blocks.{i}.{s}_mlp.2", MLP, WIDTH),
                (f"double_blocks.{i}.{s}_mod.lin", WIDTH, 6 * WIDTH),
            ]
        if linear1:  # q, k, v and the MLP's input in one
            mods.append((f"single_blocks.{i}.linear1", WIDTH, 3 * WIDTH + MLP))
        mods += [
            (f"single_blocks.{i}.linear2", WIDTH + MLP, WIDTH),
            (f"single_blocks.{i}.modulation.lin", WIDTH, 3 * WIDTH),
        ]
    return mods


def pairs(mods: list[tuple[str, int, int]], seed: int) -> dict[str, tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.randn(RANK, i, generator=g) * 0.1, torch.randn(o, RANK, generator=g) * 0.1) for n, i, o in mods}


def write(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata)
    return path


def bfl_file(path: Path, fmt: str, seed: int = 0, linear1: bool = True, outer: bool = True) -> Path:
    """The same LoRA in each of the BFL-named formats and kohya's (alpha = rank: no scaling)."""
    out: dict[str, Tensor] = {}
    for name, (a, b) in pairs(bfl_modules(linear1, outer), seed).items():
        if fmt == "kohya":
            stem, down, up = "lora_unet_" + name.replace(".", "_"), "lora_down", "lora_up"
            out[f"{stem}.alpha"] = torch.tensor(float(RANK))
        elif fmt == "comfyui":  # BFL names under diffusion_model., kohya's tensor names
            stem, down, up = f"diffusion_model.{name}", "lora_down", "lora_up"
            out[f"{stem}.alpha"] = torch.tensor(float(RANK))
        elif fmt == "bfl":
            stem, down, up = name, "lora_A", "lora_B"
        else:  # fal's Kontext trainer
            stem, down, up = f"base_model.model.{name}", "lora_A", "lora_B"
        out[f"{stem}.{down}.weight"], out[f"{stem}.{up}.weight"] = a, b
    return write(path, out)


def diffusers_file(path: Path, model: KontextModel, seed: int = 0, alpha: float | None = 8.0) -> Path:
    """Every linear of the transformer, diffusers/PEFT names, with an alpha per module."""
    shapes = lora.layer_shapes(model.transformer)
    out: dict[str, Tensor] = {}
    for name, (a, b) in pairs([(n, i, o) for n, (i, o) in shapes.items()], seed).items():
        out[f"transformer.{name}.lora_A.weight"], out[f"transformer.{name}.lora_B.weight"] = a, b
        if alpha is not None:
            out[f"transformer.{name}.alpha"] = torch.tensor(alpha)
    return write(path, out)


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory, model: KontextModel) -> Path:
    d = tmp_path_factory.mktemp("loras")
    diffusers_file(d / "styles" / "ghibli.safetensors", model, seed=1)
    diffusers_file(d / "sketch.safetensors", model, seed=2, alpha=None)
    # Without the embedders and the final projection: diffusers' kohya converter names those without
    # the `transformer.` prefix, so its load_lora_weights drops them (the engine applies them).
    bfl_file(d / "kohya.safetensors", "kohya", seed=3, linear1=False, outer=False)
    return d


@pytest.fixture(scope="module")
def lora_editor(model: KontextModel, lora_dir: Path) -> Editor:
    return Editor(model, None, lora_dir=lora_dir)


# ---------------------------------------------------------------------------------------------
# Formats and the doctor


@pytest.mark.parametrize("fmt", ["kohya", "comfyui", "bfl", "fal"])
def test_bfl_named_formats_convert_alike_and_the_doctor_counts_them(
    fmt: str, model: KontextModel, tmp_path: Path
) -> None:
    layers = lora.layer_shapes(model.transformer)
    adapter = lora.read_adapter(bfl_file(tmp_path / "x.safetensors", fmt), "x", layers)
    r = adapter.report
    assert r.format == {"kohya": "kohya", "comfyui": "bfl", "bfl": "bfl", "fal": "fal_kontext"}[fmt]
    # diffusers' converters split single_blocks.linear1 with FLUX.1's widths (3072, 12288): on the
    # tiny model it cannot be placed, and the doctor says so instead of dropping it.
    assert (r.matched, r.total) == (27, 29)
    assert r.unmatched_prefixes == [
        {
            "kohya": "lora_unet_single_blocks_*_linear1",
            "comfyui": "diffusion_model.single_blocks.*.linear1",
            "bfl": "single_blocks.*.linear1",
            "fal": "base_model.model.single_blocks.*.linear1",
        }[fmt]
    ]
    assert r.ok
    # q, k, v come apart: 2 blocks × 2 streams × (3 + 4) + 2 single blocks × 2 + 3 embedders/final.
    assert len(adapter.modules) == 35
    reference = lora.read_adapter(bfl_file(tmp_path / "ref.safetensors", "bfl"), "ref", layers)
    for name, pair in reference.modules.items():
        assert torch.allclose(adapter.modules[name].down, pair.down)
        assert torch.allclose(adapter.modules[name].up, pair.up)


def test_diffusers_format_matches_every_layer(model: KontextModel, lora_dir: Path) -> None:
    layers = lora.layer_shapes(model.transformer)
    adapter = lora.read_adapter(lora_dir / "styles" / "ghibli.safetensors", "styles/ghibli", layers)
    assert adapter.report.format == "diffusers"
    assert (adapter.report.matched, adapter.report.total, adapter.report.unmatched_prefixes) == (50, 50, [])
    pair = adapter.modules["transformer_blocks.0.attn.to_q"]
    assert pair.down.shape == (RANK, WIDTH) and pair.up.shape == (WIDTH, RANK)


def test_alpha_over_rank_is_folded_in(model: KontextModel, lora_dir: Path) -> None:
    layers = lora.layer_shapes(model.transformer)
    scaled = lora.read_adapter(lora_dir / "styles" / "ghibli.safetensors", "a", layers).modules
    without = {k: v for k, v in load_file(lora_dir / "styles" / "ghibli.safetensors").items() if ".alpha" not in k}
    plain = lora.read_adapter(write(lora_dir.parent / "plain.safetensors", without), "b", layers)
    config = {"transformer.r": RANK, "transformer.lora_alpha": 2, "transformer.alpha_pattern": {"proj_out": 12}}
    meta = {"lora_adapter_metadata": json.dumps(config)}  # diffusers' save_lora_weights writes this
    configured = lora.read_adapter(write(lora_dir.parent / "meta.safetensors", without, meta), "c", layers).modules
    for name, pair in plain.modules.items():
        assert torch.equal(scaled[name].up, pair.up * (8.0 / RANK))
        expected = 12 if name.endswith("proj_out") else 2
        assert torch.equal(configured[name].up, pair.up * (expected / RANK))


def test_a_file_matching_nothing_is_refused_naming_its_prefixes(model: KontextModel, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    sdxl = {}
    for i in range(3):
        stem = f"lora_unet_down_blocks_{i}_attentions_0_proj_in"
        sdxl[f"{stem}.lora_down.weight"] = torch.randn(RANK, 64, generator=g)
        sdxl[f"{stem}.lora_up.weight"] = torch.randn(64, RANK, generator=g)
    write(tmp_path / "sdxl.safetensors", sdxl)
    wide = {  # the right names, another model's width
        "transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.randn(RANK, 3072, generator=g),
        "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.randn(3072, RANK, generator=g),
    }
    write(tmp_path / "wide.safetensors", wide)
    library = LoraLibrary(tmp_path)
    with pytest.raises(EngineError) as e:
        library.resolve([LoraSpec("sdxl", 1.0)], model.transformer)
    assert e.value.code == "lora_unmatched" and e.value.field == "loras"
    assert "0 of 3" in e.value.message and "lora_unet_down_blocks_*_attentions_*_proj_in" in e.value.message
    with pytest.raises(EngineError) as e:
        library.resolve([LoraSpec("wide", 1.0)], model.transformer)
    assert e.value.code == "lora_unmatched" and "transformer.transformer_blocks.*.attn.to_q" in e.value.message


def test_unsupported_and_text_encoder_modules_are_counted_not_dropped(model: KontextModel, tmp_path: Path) -> None:
    tensors = load_file(bfl_file(tmp_path / "k.safetensors", "kohya", linear1=False))
    tensors["lora_unet_double_blocks_0_img_attn_proj.dora_scale"] = torch.ones(1, WIDTH)  # DoRA: not a plain LoRA
    g = torch.Generator().manual_seed(0)
    for i in range(3):  # CLIP modules: not applied (the transformer is what is adapted), reported apart
        tensors[f"lora_te1_text_model_encoder_layers_{i}_mlp_fc1.lora_down.weight"] = torch.randn(RANK, 32, generator=g)
        tensors[f"lora_te1_text_model_encoder_layers_{i}_mlp_fc1.lora_up.weight"] = torch.randn(64, RANK, generator=g)
    write(tmp_path / "mixed.safetensors", tensors)
    report = LoraLibrary(tmp_path).report("mixed", lora.layer_shapes(model.transformer))
    assert (report.matched, report.total, report.text_encoder_modules) == (26, 27, 3)
    assert report.unmatched_prefixes == ["lora_unet_double_blocks_*_img_attn_proj"]


def test_under_ninety_percent_is_refused(model: KontextModel, tmp_path: Path) -> None:
    tensors = load_file(diffusers_file(tmp_path / "full.safetensors", model))
    g = torch.Generator().manual_seed(0)
    for i in range(6):  # 50 good modules, 6 for blocks the model does not have: 89 %
        tensors[f"transformer.transformer_blocks.{10 + i}.attn.to_q.lora_A.weight"] = torch.randn(RANK, 32, generator=g)
        tensors[f"transformer.transformer_blocks.{10 + i}.attn.to_q.lora_B.weight"] = torch.randn(32, RANK, generator=g)
    write(tmp_path / "partial.safetensors", tensors)
    report = LoraLibrary(tmp_path).report("partial", lora.layer_shapes(model.transformer))
    assert (report.matched, report.total, report.ok) == (50, 56, False)
    with pytest.raises(EngineError, match="50 of 56"):
        LoraLibrary(tmp_path).resolve([LoraSpec("partial", 1.0)], model.transformer)


# ---------------------------------------------------------------------------------------------
# The low-rank path beside the base layer


@pytest.mark.parametrize("kind", ["linear", "fp8", "fp8-weights"])
def test_low_rank_path_beside_fused_and_quantized_layers(kind: str, model: KontextModel, lora_dir: Path) -> None:
    adapter = LoraLibrary(lora_dir).load("styles/ghibli", lora.layer_shapes(model.transformer))
    t = copy.deepcopy(model.transformer)
    assert fp8.fuse_qkv(t) == 4
    if kind != "linear":
        fp8.quantize_transformer_blocks(t, kind)  # type: ignore[arg-type]
    expected_type = {"linear": torch.nn.Linear, "fp8": fp8.Float8Linear, "fp8-weights": fp8.Float8WeightOnlyLinear}
    x = torch.randn(2, 5, WIDTH, generator=torch.Generator().manual_seed(0))
    scale = 0.7
    cases = {
        "transformer_blocks.0.attn.to_qkv": ["to_q", "to_k", "to_v"],
        "transformer_blocks.1.attn.to_added_qkv": ["add_q_proj", "add_k_proj", "add_v_proj"],
        "single_transformer_blocks.0.attn.to_qkv": ["to_q", "to_k", "to_v"],
        "transformer_blocks.0.ff.net.0.proj": [None],
    }
    for layer_name, parts in cases.items():
        layer = t.get_submodule(layer_name)
        assert type(layer) is expected_type[kind]
        base = layer(x)
        with lora.applied(t, [(adapter, scale)]):
            y = layer(x)
        parent = layer_name.rpartition(".")[0]
        names = [layer_name] if parts == [None] else [f"{parent}.{p}" for p in parts]
        delta = torch.cat([x @ adapter.modules[n].down.T @ adapter.modules[n].up.T * scale for n in names], dim=-1)
        assert (y - (base + delta)).abs().max().item() <= 1e-5
        assert torch.equal(layer(x), base)  # removed after


def _transformer_inputs() -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    return {
        "hidden_states": torch.randn(1, 8, 64, generator=g),
        "encoder_hidden_states": torch.randn(1, 6, 32, generator=g),
        "pooled_projections": torch.randn(1, 32, generator=g),
        "timestep": torch.tensor([0.5]),
        "guidance": torch.tensor([2.5]),
        "img_ids": torch.zeros(8, 3),
        "txt_ids": torch.zeros(6, 3),
        "return_dict": False,
    }


def test_fused_transformer_gives_the_unfused_result(model: KontextModel, lora_dir: Path) -> None:
    library = LoraLibrary(lora_dir)
    layers = lora.layer_shapes(model.transformer)
    adapters = [(library.load("styles/ghibli", layers), 0.6), (library.load("kohya", layers), -1.2)]
    fused = copy.deepcopy(model.transformer)
    fp8.fuse_qkv(fused)
    inputs = _transformer_inputs()
    with torch.no_grad():
        base = model.transformer(**inputs)[0]
        with lora.applied(model.transformer, adapters):
            ours = model.transformer(**inputs)[0]
        with lora.applied(fused, adapters):
            theirs = fused(**inputs)[0]
    assert (ours - base).abs().max().item() > 1e-2  # the adapters do something
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_compiled_blocks_run_eagerly_with_adapters(model: KontextModel, lora_dir: Path) -> None:
    from kontext_engine.speed import compile_transformer

    compiles = []

    def counting(gm, example_inputs):  # type: ignore[no-untyped-def]
        compiles.append(1)
        return gm.forward

    t = copy.deepcopy(model.transformer)
    adapter = LoraLibrary(lora_dir).load("sketch", lora.layer_shapes(t))
    inputs = _transformer_inputs()
    with torch.no_grad():
        with lora.applied(model.transformer, [(adapter, 1.0)]):
            eager = model.transformer(**inputs)[0]
        compile_transformer(t, torch.device("cpu"), backend=counting)
        t(**inputs)
        before = len(compiles)
        with lora.applied(t, [(adapter, 1.0)]):
            ours = t(**inputs)[0]
    assert before > 0 and len(compiles) == before  # no recompilation for the adapter's hooks
    assert (ours - eager).abs().max().item() <= 1e-5


# ---------------------------------------------------------------------------------------------
# Whole edits


def reference_pipeline(model: KontextModel, tiny_dir: Path) -> FluxKontextPipeline:
    pipe = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_dir / "scheduler"),
        vae=model.vae,
        text_encoder=model.clip,
        tokenizer=model.clip_tokenizer,
        text_encoder_2=model.t5,
        tokenizer_2=model.t5_tokenizer,
        transformer=copy.deepcopy(model.transformer),  # load_lora_weights changes it in place
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize(("name", "scale"), [("styles/ghibli", 0.8), ("kohya", 1.3)])
def test_matches_diffusers_load_lora_weights(
    name: str, scale: float, lora_editor: Editor, model: KontextModel, tiny_dir: Path, lora_dir: Path
) -> None:
    image = photo(256, 256)
    ours = lora_editor.edit(
        EditRequest(image, "make the sky purple", num_inference_steps=4, seeds=(5,), loras=(LoraSpec(name, scale),))
    )
    pipe = reference_pipeline(model, tiny_dir)
    pipe.load_lora_weights(str(lora_dir / f"{name}.safetensors"), adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[scale])
    final: dict[str, Tensor] = {}

    def keep_latents(pipe, i, t, kwargs):  # type: ignore[no-untyped-def]
        final["latents"] = kwargs["latents"].clone()
        return kwargs

    pipe(
        image=Image.fromarray(image),
        prompt="make the sky purple",
        height=ours.height,
        width=ours.width,
        max_area=ours.width * ours.height,
        num_inference_steps=4,
        guidance_scale=2.5,
        generator=[torch.Generator("cpu").manual_seed(5)],
        output_type="pt",
        callback_on_step_end=keep_latents,
    )
    err = (ours.latents - final["latents"]).abs().max().item()
    print(f"parity {name} scale {scale}: max |Δ latents| = {err:.2e}")
    assert err <= TOLERANCE
    assert [r["name"] for r in ours.loras] == [name] and ours.loras[0]["scale"] == scale
    assert ours.loras[0]["matched"] == ours.loras[0]["total"] > 0 and len(ours.loras[0]["sha256"]) == 64


def test_requests_in_a_row_equal_each_alone(lora_editor: Editor) -> None:
    image = photo(128, 128)

    def run(*specs: LoraSpec) -> Tensor:
        return lora_editor.edit(EditRequest(image, "x", num_inference_steps=1, seeds=(1,), loras=specs)).latents

    base = run()
    a = run(LoraSpec("styles/ghibli", 1.0))
    b = run(LoraSpec("sketch", -0.5), LoraSpec("kohya", 2.0))
    assert torch.equal(run(LoraSpec("styles/ghibli", 1.0)), a)  # after b: as alone
    assert not any(m._forward_hooks for m in lora_editor.m.transformer.modules())  # the base is back
    assert (a - base).abs().max().item() > 1e-3 and (b - a).abs().max().item() > 1e-3


def test_adapters_are_cached_by_content(model: KontextModel, lora_dir: Path) -> None:
    library = LoraLibrary(lora_dir)
    layers = lora.layer_shapes(model.transformer)
    adapter = library.load("sketch", layers)
    assert library.load("sketch", layers) is adapter
    with lora.applied(model.transformer, [(adapter, 0.0)]):  # scale 0: nothing to run
        assert not any(m._forward_hooks for m in model.transformer.modules())


def test_request_limits(lora_editor: Editor, editor: Editor) -> None:
    image = photo(64, 64)
    for specs in [(LoraSpec("sketch", 4.5),), tuple(LoraSpec("sketch", 1.0) for _ in range(5))]:
        with pytest.raises(EngineError) as e:
            lora_editor.edit(EditRequest(image, "x", num_inference_steps=1, loras=specs))
        assert (e.value.code, e.value.field) == ("invalid_request", "loras")
    with pytest.raises(EngineError) as e:
        lora_editor.edit(EditRequest(image, "x", num_inference_steps=1, loras=(LoraSpec("nope", 1.0),)))
    assert (e.value.code, e.value.field) == ("lora_not_found", "loras")
    with pytest.raises(EngineError) as e:  # an engine without a LoRA directory
        editor.edit(EditRequest(image, "x", num_inference_steps=1, loras=(LoraSpec("sketch", 1.0),)))
    assert e.value.code == "lora_not_found"


# ---------------------------------------------------------------------------------------------
# The directory


def test_nothing_outside_the_directory_is_read(tmp_path: Path, model: KontextModel) -> None:
    root = tmp_path / "loras"
    diffusers_file(tmp_path / "outside.safetensors", model)
    diffusers_file(root / "inside.safetensors", model)
    os.symlink(tmp_path / "outside.safetensors", root / "link.safetensors")
    library = LoraLibrary(root)
    assert library.names() == ["inside"]
    for name in ["../outside", "/etc/passwd", "a/../../outside", "link", "", "./inside", "x\0y"]:
        with pytest.raises(EngineError) as e:
            library.path(name)
        assert e.value.code == "lora_not_found", name
    assert library.path("inside") == (root / "inside.safetensors").resolve()


def test_an_unreadable_file_is_refused(tmp_path: Path, model: KontextModel) -> None:
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(EngineError) as e:
        LoraLibrary(tmp_path).resolve([LoraSpec("broken", 1.0)], model.transformer)
    assert e.value.code == "lora_invalid"


def test_listing_cli(lora_dir: Path, tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lora.main(["list", "--lora-dir", str(lora_dir), "--model-dir", str(tiny_dir)]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in entries] == ["kohya", "sketch", "styles/ghibli"]
    by_name = {e["name"]: e for e in entries}
    assert by_name["styles/ghibli"] == {
        "name": "styles/ghibli",
        "size_bytes": (lora_dir / "styles" / "ghibli.safetensors").stat().st_size,
        "format": "diffusers",
        "matched": 50,
        "total": 50,
        "unmatched_prefixes": [],
        "text_encoder_modules": 0,
        "ok": True,
        "error": None,
    }
    assert by_name["kohya"]["format"] == "kohya" and by_name["kohya"]["matched"] == by_name["kohya"]["total"] == 24
