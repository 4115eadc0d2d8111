"""Loading FLUX.1 Kontext [dev] from a local directory, never from the network.

Layout (the Hugging Face repository black-forest-labs/FLUX.1-Kontext-dev):
  model_index.json, scheduler/scheduler_config.json, transformer/ (config + safetensors shards),
  vae/, text_encoder/ (CLIP-L), text_encoder_2/ (T5-XXL), tokenizer/, tokenizer_2/
The transformer may instead come from BFL's single file `flux1-kontext-dev.safetensors` at the
top of the directory (its config from transformer/config.json when present, else the `dev` preset).
Every problem is reported before anything heavy is loaded, naming the file at fault.
"""

import json
import math
import os
import struct
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
from torch import Tensor
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
    offload: bool = False  # low-memory mode: T5's blocks stay in host memory and stream in (placement.py)


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


_SAFETENSORS_DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "U8": torch.uint8,
}


class SafetensorsReader:
    """Reads runs of rows of a .safetensors file's tensors with plain reads into fresh tensors: no
    memory map (whose touched pages count as this process's memory until it is closed), so loading
    a checkpoint takes about its size in RAM, not twice."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "rb")
        try:
            (n,) = struct.unpack("<Q", self.file.read(8))
            header = json.loads(self.file.read(n))
        except (struct.error, ValueError) as e:
            self.file.close()
            raise ModelDirError(f"{path}: not a safetensors file ({e})") from e
        header.pop("__metadata__", None)
        self.data_start = 8 + n
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int]] = {}
        for name, info in header.items():
            if info.get("dtype") not in _SAFETENSORS_DTYPES:
                self.file.close()
                raise ModelDirError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
            self.entries[name] = (_SAFETENSORS_DTYPES[info["dtype"]], tuple(info["shape"]), info["data_offsets"][0])

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: shape for k, (_, shape, _) in self.entries.items()}

    def _read_into(self, out: Tensor, name: str, first: int, end: int) -> None:
        dtype, shape, offset = self.entries[name]
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        buf = memoryview(out.reshape(-1).view(torch.uint8).numpy())
        self.file.seek(self.data_start + offset + first * row_bytes)
        done, want = 0, (end - first) * row_bytes
        while done < want:
            n = self.file.readinto(buf[done:want])
            if not n:
                raise ModelDirError(f"{self.path}: file ends inside tensor {name!r}")
            done += n

    def read(self, pieces: list[bfl_format.Piece], dtype: torch.dtype) -> Tensor:
        """The rows `pieces` name, stacked, in `dtype` (read straight into place when the file has it)."""
        file_dtype, shape, _ = self.entries[pieces[0][0]]
        out = torch.empty((sum(b - a for _, a, b in pieces), *shape[1:]), dtype=dtype)
        row = 0
        for name, a, b in pieces:
            if file_dtype == dtype:
                self._read_into(out[row : row + b - a], name, a, b)
            else:  # one piece in the file's dtype at a time
                tmp = torch.empty((b - a, *shape[1:]), dtype=file_dtype)
                self._read_into(tmp, name, a, b)
                out[row : row + b - a] = tmp.to(dtype)
            row += b - a
        return out

    def close(self) -> None:
        self.file.close()


def _load_single_file(root: Path, config: dict[str, Any], dtype: torch.dtype) -> FluxTransformer2DModel:
    """BFL's single file, streamed tensor by tensor into a meta-device model (assign): each
    diffusers tensor is read from its rows in the file, so the peak is about the file's size."""
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = FluxTransformer2DModel(**kwargs)
    path = root / SINGLE_FILE
    reader = SafetensorsReader(path)
    try:
        target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        plan = bfl_format.diffusers_pieces(
            reader.shapes(), target, config["num_layers"], config["num_single_layers"], str(path)
        )
        state = {name: reader.read(pieces, dtype) for name, pieces in plan.items()}
    finally:
        reader.close()
    model.load_state_dict(state, strict=True, assign=True)
    return model


def load_model(root: Path, device: torch.device, dtype: torch.dtype, offload: bool = False) -> KontextModel:
    """Load every part in `dtype` (bf16 on GPU, float32 on CPU) into host memory. On a CPU device
    that is where they run; on a GPU `speed.accelerate` moves them there (placement.place_model),
    quantizing block by block on the way, so the device never holds what it would discard.
    `offload`: low-memory mode (T5's blocks stay on the host and stream in when a prompt is encoded)."""
    source = check_model_dir(root)
    offline: dict[str, Any] = {"local_files_only": True}
    if source == "diffusers":
        transformer = FluxTransformer2DModel.from_pretrained(root / "transformer", torch_dtype=dtype, **offline)
    else:
        transformer = _load_single_file(root, _transformer_config(root), dtype)
    vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype, **offline)
    clip = CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype, **offline)
    t5 = T5EncoderModel.from_pretrained(root / "text_encoder_2", dtype=dtype, **offline)
    for part in (transformer, vae, clip, t5):
        part.to("cpu").eval().requires_grad_(False)
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
