"""Loading from the Hugging Face layout and from BFL's single file; named errors for bad directories."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from kontext_engine.editor import Editor, EditRequest
from kontext_engine.errors import ModelDirError
from kontext_engine.loading import SINGLE_FILE, check_model_dir, load_model
from kontext_engine.tiny import generate

from .conftest import CPU, photo

MANIFEST = Path(__file__).with_name("tiny_manifest.json")


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_tiny_model_is_byte_identical_on_every_machine(tiny_dir: Path) -> None:
    # The manifest was written by the generator on another machine; any drift in seeding,
    # tokenizer training or serialisation shows here.
    assert digest(tiny_dir) == json.loads(MANIFEST.read_text())


def test_single_file_checkpoint_loads_and_gives_the_same_output(tmp_path: Path, tiny_dir: Path) -> None:
    single = generate(tmp_path / "single", single_file=True)
    assert check_model_dir(single) == "single_file"
    assert not (single / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    keys = set(__import__("safetensors.torch").torch.load_file(single / SINGLE_FILE))
    assert "double_blocks.0.img_attn.qkv.weight" in keys and "final_layer.adaLN_modulation.1.weight" in keys

    req = EditRequest(photo(64, 64), "a blue door", num_inference_steps=2, seeds=(3,))
    from_single = Editor(load_model(single, CPU, torch.float32), None).edit(req)
    from_diffusers = Editor(load_model(tiny_dir, CPU, torch.float32), None).edit(req)
    # Same weights; only float summation order may differ between the two loads.
    assert (from_single.latents - from_diffusers.latents).abs().max().item() <= 1e-5
    diff = from_single.images[0].astype(int) - from_diffusers.images[0].astype(int)
    assert abs(diff).max() <= 1


def copy_of(tiny_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dir, tmp_path / "copy"))


def test_missing_vae_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    root = copy_of(tiny_dir, tmp_path)
    shutil.rmtree(root / "vae")
    with pytest.raises(ModelDirError, match=r"missing .*vae/"):
        load_model(root, CPU, torch.float32)


def test_missing_transformer_weights_and_no_single_file_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    root = copy_of(tiny_dir, tmp_path)
    (root / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelDirError, match=r"diffusion_pytorch_model.safetensors.*flux1-kontext-dev.safetensors"):
        check_model_dir(root)


def test_a_missing_shard_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    root = copy_of(tiny_dir, tmp_path)
    weights = root / "text_encoder_2" / "model.safetensors"
    weights.rename(root / "text_encoder_2" / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (root / "text_encoder_2" / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelDirError, match=r"missing .*text_encoder_2/model-00002-of-00002.safetensors"):
        check_model_dir(root)


def test_another_pipeline_is_refused_by_name(tmp_path: Path, tiny_dir: Path) -> None:
    root = copy_of(tiny_dir, tmp_path)
    index = json.loads((root / "model_index.json").read_text())
    (root / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
    with pytest.raises(ModelDirError, match=r"model_index.json: _class_name is 'FluxPipeline'"):
        check_model_dir(root)


def test_mismatched_text_encoder_is_named(tmp_path: Path, tiny_dir: Path) -> None:
    root = copy_of(tiny_dir, tmp_path)
    cfg_path = root / "text_encoder_2" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "d_model": 64}))
    with pytest.raises(ModelDirError, match=r"text_encoder_2/config.json: d_model 64 does not match"):
        check_model_dir(root)


def test_a_single_file_of_the_wrong_width_is_refused(tmp_path: Path, tiny_dir: Path) -> None:
    root = generate(tmp_path / "single", single_file=True)
    cfg_path = root / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "num_attention_heads": 4}))  # 4 × 16 = 64 wide, file is 32
    with pytest.raises(ModelDirError, match=r"flux1-kontext-dev.safetensors: tensor 'img_in.weight' has shape"):
        load_model(root, CPU, torch.float32)


RSS_SCRIPT = r"""
import sys, torch
from pathlib import Path
from kontext_engine.loading import _load_single_file, _transformer_config

def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

root = Path(sys.argv[1])
config = _transformer_config(root)
open("/proc/self/clear_refs", "w").write("5")  # the peak RSS starts again from here
base = kb("VmRSS")
model = _load_single_file(root, config, torch.bfloat16)
peak = kb("VmHWM") - base
k = model.transformer_blocks[0].attn.to_k.weight[:, 0].float()
n = model.norm_out.linear.weight[:, 0].float()
rows = torch.arange(3 * 3072)
ok = torch.equal(k, (rows[3072:6144] % 251).float()) and torch.equal(n, ((torch.arange(6144) + 3072) % 6144 % 251).float())
print(peak, ok)
"""


def test_the_single_file_streams_in_with_about_its_own_size_in_ram(tmp_path: Path) -> None:
    # Full width (3072, the real tensors' sizes), 1 double + 1 single block: a 1.1 GB checkpoint.
    import subprocess
    import sys

    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    from kontext_engine import bfl_format
    from kontext_engine.configs import PRESETS

    config = {**PRESETS["dev"].transformer, "num_layers": 1, "num_single_layers": 1}
    with torch.device("meta"):
        meta = FluxTransformer2DModel(**config)
    shapes = {k: v.shape for k, v in bfl_format.to_bfl(meta.state_dict(), 1, 1).items()}
    # Every value says its row (mod 251, exact in bf16), so the test sees splits and swaps land right.
    ckpt = {
        k: (torch.arange(s[0]) % 251).to(torch.bfloat16).reshape(-1, *[1] * (len(s) - 1)).expand(s).contiguous()
        for k, s in shapes.items()
    }
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text(
        json.dumps({"_class_name": "FluxTransformer2DModel", **config})
    )
    save_file({f"model.diffusion_model.{k}": v for k, v in ckpt.items()}, tmp_path / SINGLE_FILE)
    del ckpt
    size = (tmp_path / SINGLE_FILE).stat().st_size
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    ).stdout.split()
    peak, ok = int(out[-2]), out[-1] == "True"
    assert ok
    assert peak <= 1.15 * size, f"peak RSS {peak / 1e9:.2f} GB for a {size / 1e9:.2f} GB file"
