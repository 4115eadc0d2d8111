"""Loading FLUX.1 Kontext [dev] from a local directory, never from the network.

Layout (the Hugging Face repository black-forest-labs/FLUX.1-Kontext-dev):
  model_index.json, scheduler/scheduler_config.json, transformer/ (config + safetensors shards),
  vae/, text_encoder/ (CLIP-L), text_encoder_2/ (T5-XXL), tokenizer/, tokenizer_2/
The transformer may instead come from BFL's single file `flux1-kontext-dev.safetensors` at the
top of the directory (its config from transformer/config.json when present, else the `dev` preset).
Every problem is reported before anything heavy is loaded, naming the file at fault.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# No network at run time, ever: set before diffusers/transformers read their settings.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Quiet loaders: no per-file progress bars or advice in the gateway's log.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from . import bfl_format
from .configs import PRESETS, preset_matching
from .errors import ModelDirError

SINGLE_FILE = "flux1-kontext-dev.safetensors"
TransformerSource = Literal["diffusers", "single_file"]


@dataclass
class KontextModel:
    transformer: FluxTransformer2DModel
    vae: AutoencoderKL
    clip: CLIPTextModel
    clip_tokenizer: Any
    t5: T5EncoderModel
    t5_tokenizer: Any
    scheduler_config: dict[str, Any]
    variant: str  # "dev", "tiny" or "custom"
    transformer_source: TransformerSource
    device: torch.device
    dtype: torch.dtype
    offload: bool = False  # low-memory mode: parts live on the CPU and visit the GPU one at a time


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelDirError(f"missing {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelDirError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    return data


def _require_weights(folder: Path, stem: str) -> None:
    """`<stem>.safetensors`, or `<stem>.safetensors.index.json` with every shard it lists."""
    if not folder.is_dir():
        raise ModelDirError(f"missing {folder}/ (expected {folder.name}/config.json and {stem}.safetensors)")
    if (folder / f"{stem}.safetensors").is_file():
        return
    index = folder / f"{stem}.safetensors.index.json"
    if not index.is_file():
        raise ModelDirError(f"missing {folder / (stem + '.safetensors')} (or its sharded index {index.name})")
    shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
    if not shards:
        raise ModelDirError(f"{index}: weight_map is empty")
    for shard in shards:
        if not (folder / shard).is_file():
            raise ModelDirError(f"missing {folder / shard} (listed in {index.name})")


def _expect(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise ModelDirError(f"{path}: {what}")


def check_model_dir(root: Path) -> TransformerSource:
    """Validate the directory's files and configs; return where the transformer comes from."""
    if not root.is_dir():
        raise ModelDirError(f"model directory {root} does not exist")
    index = _read_json(root / "model_index.json")
    _expect(
        index.get("_class_name") == "FluxKontextPipeline",
        root / "model_index.json",
        f"_class_name is {index.get('_class_name')!r}, expected 'FluxKontextPipeline' (is this FLUX.1 Kontext?)",
    )
    for part, stem in (
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
        ("text_encoder_2", "model"),
    ):
        _require_weights(root / part, stem)
        _read_json(root / part / "config.json")
    for name in ("vocab.json", "merges.txt"):
        if not (root / "tokenizer" / name).is_file():
            raise ModelDirError(f"missing {root / 'tokenizer' / name}")
    t5_tok = root / "tokenizer_2"
    if not ((t5_tok / "tokenizer.json").is_file() or (t5_tok / "spiece.model").is_file()):
        raise ModelDirError(f"missing {t5_tok / 'tokenizer.json'} (or spiece.model)")

    sched_path = root / "scheduler" / "scheduler_config.json"
    sched = _read_json(sched_path)
    for key in ("base_image_seq_len", "max_image_seq_len", "base_shift", "max_shift"):
        _expect(isinstance(sched.get(key), int | float), sched_path, f"missing numeric {key!r}")
    _expect(sched.get("use_dynamic_shifting") is True, sched_path, "use_dynamic_shifting must be true")

    try:
        _require_weights(root / "transformer", "diffusion_pytorch_model")
        source: TransformerSource = "diffusers"
    except ModelDirError as missing:
        if not (root / SINGLE_FILE).is_file():
            raise ModelDirError(f"{missing}; no single-file checkpoint {root / SINGLE_FILE} either") from None
        source = "single_file"

    tcfg = _transformer_config(root)
    tpath = root / "transformer" / "config.json"
    _expect(tcfg.get("in_channels") == 64, tpath, f"in_channels is {tcfg.get('in_channels')}, expected 64")
    _expect(
        tcfg.get("guidance_embeds") is True,
        tpath,
        "guidance_embeds must be true (Kontext [dev] is distilled)",
    )
    vae = _read_json(root / "vae" / "config.json")
    _expect(vae.get("latent_channels") == 16, root / "vae/config.json", "latent_channels must be 16")
    clip = _read_json(root / "text_encoder" / "config.json")
    _expect(
        clip.get("hidden_size") == tcfg.get("pooled_projection_dim"),
        root / "text_encoder/config.json",
        f"hidden_size {clip.get('hidden_size')} does not match the transformer's pooled_projection_dim "
        f"{tcfg.get('pooled_projection_dim')}",
    )
    t5 = _read_json(root / "text_encoder_2" / "config.json")
    _expect(
        t5.get("d_model") == tcfg.get("joint_attention_dim"),
        root / "text_encoder_2/config.json",
        f"d_model {t5.get('d_model')} does not match the transformer's joint_attention_dim "
        f"{tcfg.get('joint_attention_dim')}",
    )
    return source


def _transformer_config(root: Path) -> dict[str, Any]:
    path = root / "transformer" / "config.json"
    if path.is_file():
        return _read_json(path)
    return {"_class_name": "FluxTransformer2DModel", **PRESETS["dev"].transformer}


def _load_single_file(root: Path, config: dict[str, Any], dtype: torch.dtype) -> FluxTransformer2DModel:
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = FluxTransformer2DModel(**kwargs)
    path = root / SINGLE_FILE
    state = bfl_format.to_diffusers(
        load_file(path), model.state_dict(), config["num_layers"], config["num_single_layers"], str(path)
    )
    # Fresh, aligned copies: split views would keep the fused tensors alive and may take slower kernels.
    model.load_state_dict({k: v.to(dtype).clone() for k, v in state.items()}, strict=True, assign=True)
    return model


def load_model(root: Path, device: torch.device, dtype: torch.dtype, offload: bool = False) -> KontextModel:
    """Load every part onto `device` in `dtype` (bf16 on GPU, float32 on CPU); with `offload`,
    onto the CPU, for the Editor to move in when each is needed."""
    source = check_model_dir(root)
    offline: dict[str, Any] = {"local_files_only": True}
    if source == "diffusers":
        transformer = FluxTransformer2DModel.from_pretrained(root / "transformer", torch_dtype=dtype, **offline)
    else:
        transformer = _load_single_file(root, _transformer_config(root), dtype)
    vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype, **offline)
    clip = CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype, **offline)
    t5 = T5EncoderModel.from_pretrained(root / "text_encoder_2", dtype=dtype, **offline)
    parts = (transformer, vae, clip, t5)
    for part in parts:
        part.to("cpu" if offload else device).eval().requires_grad_(False)
    return KontextModel(
        transformer=transformer,
        vae=vae,
        clip=clip,
        clip_tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer", **offline),
        t5=t5,
        t5_tokenizer=T5TokenizerFast.from_pretrained(root / "tokenizer_2", **offline),
        scheduler_config=_read_json(root / "scheduler" / "scheduler_config.json"),
        variant=preset_matching(dict(transformer.config)),
        transformer_source=source,
        device=device,
        dtype=dtype,
        offload=offload,
    )
