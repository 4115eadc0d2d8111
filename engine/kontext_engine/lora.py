"""LoRA adapters per request, applied beside the base layers: y = base(x) + Σ scale·(alpha/rank)·B(A(x)).

The base weights are never touched, so an adapter costs no reload and no re-quantization, works
the same over nn.Linear, fp8.Float8Linear and fp8.Float8WeightOnlyLinear, and is gone when the
request ends (`applied`). Files come from one directory (`LoraLibrary`); every common format is
converted to diffusers' module names by diffusers' own converters (FluxLoraLoaderMixin), one
module at a time, so the doctor (`LoraReport`) can say exactly which modules of a file found a
layer and which did not. A file with under 90 % of its modules matched is refused, never applied
in part silently.

    python -m kontext_engine.lora list --lora-dir D --model-dir M   # JSON, no weights loaded
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cache import LRU
from .errors import EngineError, ModelDirError

MAX_ADAPTERS = 4  # per request
MAX_SCALE = 4.0  # |scale|
MIN_MATCHED = 0.9  # the share of a file's modules that must find a layer
EXTENSION = ".safetensors"

Format = Literal["diffusers", "kohya", "bfl", "fal_kontext", "unknown", "invalid"]
LayerShapes = dict[str, tuple[int, int]]  # unfused diffusers module name → (in_features, out_features)

# q/k/v as fp8.fuse_qkv leaves them: one linear per attention, parts stacked along the output.
_FUSED = {
    "to_q": ("to_qkv", 0),
    "to_k": ("to_qkv", 1),
    "to_v": ("to_qkv", 2),
    "add_q_proj": ("to_added_qkv", 0),
    "add_k_proj": ("to_added_qkv", 1),
    "add_v_proj": ("to_added_qkv", 2),
}
_PARTS = {fused: [leaf for leaf, (f, _) in _FUSED.items() if f == fused] for fused, _ in _FUSED.values()}

# The tensors of one LoRA module in any of the formats; anything else (DoRA scales, LoKr, norm
# diffs …) leaves its module unsupported, hence unmatched.
_LORA_PARAM = re.compile(r"^(?P<stem>.+?)\.(?P<param>(?:lora_(?:down|up|A|B))\.(?:weight|bias)|alpha)$")
_TEXT_ENCODER = ("lora_te", "text_encoder", "text_encoders.")
_BFL_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.")
_BFL_BLOCK = re.compile(r"^(double_blocks|single_blocks|img_in|txt_in|time_in|vector_in|guidance_in|final_layer)\b")


@dataclass(frozen=True)
class LoraSpec:
    name: str  # relative to the LoRA directory, without .safetensors: "styles/ghibli"
    scale: float = 1.0


def validate_specs(specs: Sequence[LoraSpec]) -> None:
    if len(specs) > MAX_ADAPTERS:
        raise EngineError("invalid_request", f"at most {MAX_ADAPTERS} LoRAs per request, got {len(specs)}", "loras")
    for s in specs:
        if not (-MAX_SCALE <= s.scale <= MAX_SCALE):  # NaN fails too
            raise EngineError(
                "invalid_request", f"LoRA {s.name!r}: scale {s.scale} is outside [-{MAX_SCALE}, {MAX_SCALE}]", "loras"
            )


@dataclass
class LoraReport:
    """The doctor's verdict on one file, for the listing and for the generation's metadata."""

    name: str
    size_bytes: int
    format: Format
    matched: int = 0  # the file's transformer modules that found a layer of the model (shape included)
    total: int = 0  # the file's transformer modules
    unmatched_prefixes: list[str] = field(default_factory=list)  # the others' names, block numbers as *
    text_encoder_modules: int = 0  # CLIP/T5 modules: counted apart and not applied (the engine adapts the transformer)
    error: str | None = None  # why the file could not be read at all

    @property
    def ok(self) -> bool:
        return self.error is None and self.total > 0 and self.matched >= MIN_MATCHED * self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "format": self.format,
            "matched": self.matched,
            "total": self.total,
            "unmatched_prefixes": self.unmatched_prefixes,
            "text_encoder_modules": self.text_encoder_modules,
            "ok": self.ok,
            "error": self.error,
        }


@dataclass(frozen=True)
class LowRank:
    down: Tensor  # A (rank, in) float32
    up: Tensor  # B · alpha/rank (out, rank) float32: the file's own scaling folded in
    bias: Tensor | None  # lora_B's bias · alpha/rank (out,), rare


@dataclass
class Adapter:
    name: str
    sha256: str
    report: LoraReport
    modules: dict[str, LowRank]  # unfused diffusers module name → its low-rank pair (matched ones only)


# ---------------------------------------------------------------------------------------------
# The model's layers


def layer_shapes(transformer: nn.Module) -> LayerShapes:
    """Every linear-like layer by its unfused diffusers name (a fused to_qkv answers for to_q, to_k
    and to_v), so one doctor serves a meta model built from the config and a placed, fused, FP8 one."""
    shapes: LayerShapes = {}
    for name, module in transformer.named_modules():
        n_in, n_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if not (isinstance(n_in, int) and isinstance(n_out, int)):
            continue
        parent, _, leaf = name.rpartition(".")
        if leaf in _PARTS:
            for part in _PARTS[leaf]:
                shapes[f"{parent}.{part}"] = (n_in, n_out // len(_PARTS[leaf]))
        else:
            shapes[name] = (n_in, n_out)
    return shapes


def meta_layer_shapes(model_dir: Path) -> LayerShapes:
    """The transformer's layers from the model directory's config, on the meta device: no weights read."""
    from diffusers import FluxTransformer2DModel

    from .loading import _transformer_config

    config = {k: v for k, v in _transformer_config(model_dir).items() if not k.startswith("_")}
    with torch.device("meta"):
        return layer_shapes(FluxTransformer2DModel(**config))


# ---------------------------------------------------------------------------------------------
# Reading and converting a file


def detect_format(keys: Sequence[str]) -> Format:
    if any(k.startswith(("lora_unet_", "lora_transformer_", "lora_te")) for k in keys):
        return "kohya"  # sd-scripts, ai-toolkit's kohya export, ComfyUI's kohya names
    fal = any(k.startswith("base_model.model.") for k in keys)
    if any(_BFL_BLOCK.match(_strip_bfl_prefix(k)) for k in keys):
        return "fal_kontext" if fal else "bfl"
    if any(".lora_A." in k or ".lora_B." in k for k in keys):
        return "diffusers"  # diffusers / PEFT names
    return "unknown"


def _strip_bfl_prefix(key: str) -> str:
    for prefix in _BFL_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def _for_diffusers(fmt: Format, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """One module's tensors in a form FluxLoraLoaderMixin.lora_state_dict converts. BFL names (BFL's
    own files, ComfyUI's, fal's Kontext trainer's) go the way ComfyUI files do, as
    `diffusion_model.<bfl name>.lora_down/up`, into diffusers' kohya converter: unlike its fal
    converter it takes any number of blocks and skips what a file lacks."""
    if fmt in ("bfl", "fal_kontext"):
        return {
            "diffusion_model."
            + _strip_bfl_prefix(k).replace(".lora_A.", ".lora_down.").replace(".lora_B.", ".lora_up."): v
            for k, v in tensors.items()
        }
    if fmt == "diffusers":
        return {
            "transformer." + k.removeprefix("base_model.model.").removeprefix("transformer."): v
            for k, v in tensors.items()
        }
    return dict(tensors)


def _convert(fmt: Format, tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, float]]:
    """(diffusers state dict without the `transformer.` prefix, module → alpha where the file gives one)."""
    from diffusers.loaders import FluxLoraLoaderMixin

    state, alphas = FluxLoraLoaderMixin.lora_state_dict(_for_diffusers(fmt, tensors), return_alphas=True)
    module_alphas = {
        k.removeprefix("transformer.").replace(".lora_A", "").removesuffix(".alpha"): float(v)
        for k, v in (alphas or {}).items()
    }
    return {k.removeprefix("transformer."): v for k, v in state.items()}, module_alphas


def _collapse(name: str) -> str:
    """`transformer_blocks.7.attn.to_q` → `transformer_blocks.*.attn.to_q` (also `_7_` in kohya names)."""
    return re.sub(r"(?<=[._])\d+(?=[._]|$)", "*", name)


def _peft_config(metadata: dict[str, str] | None) -> dict[str, Any]:
    """diffusers' LoraConfig in the file's metadata (save_lora_weights writes it), keys unprefixed."""
    raw = (metadata or {}).get("lora_adapter_metadata")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError:
        return {}
    return {k.removeprefix("transformer."): v for k, v in config.items()} if isinstance(config, dict) else {}


def _pattern(patterns: dict[str, Any], module: str) -> Any:
    """PEFT's rule for rank_pattern / alpha_pattern keys: a regex matching the module name's tail."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return None


def _scaling(module: str, rank: int, alphas: dict[str, float], config: dict[str, Any]) -> float:
    """alpha / rank as diffusers' loader configures PEFT: the file's alpha for the module, else the
    file's most common one, else the metadata's LoraConfig, else alpha = rank (no scaling)."""
    if module in alphas:
        alpha = alphas[module]
    elif alphas:
        alpha = Counter(alphas.values()).most_common(1)[0][0]
    elif config:
        alpha = _pattern(config.get("alpha_pattern") or {}, module) or config.get("lora_alpha", rank)
        if config.get("use_rslora"):
            return float(alpha) / rank**0.5
    else:
        alpha = rank
    return float(alpha) / rank


def _group_modules(keys: Sequence[str]) -> dict[str, list[str]]:
    modules: dict[str, list[str]] = {}
    for key in keys:
        m = _LORA_PARAM.match(key)
        stem = m.group("stem") if m else key.rpartition(".")[0] or key
        modules.setdefault(stem, []).append(key)
    return modules


def read_adapter(path: Path, name: str, layers: LayerShapes) -> Adapter:
    """Read, convert and check one file against `layers`; the report says what matched."""
    from safetensors import SafetensorError, safe_open

    report = LoraReport(name=name, size_bytes=path.stat().st_size, format="invalid")
    sha = _sha256(path)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        report.error = f"not a readable safetensors file: {e}"
        return Adapter(name, sha, report, {})

    report.format = fmt = detect_format(list(tensors))
    config = _peft_config(metadata)
    modules: dict[str, LowRank] = {}
    unmatched: set[str] = set()
    converted: list[tuple[str, dict[str, Tensor]]] = []
    all_alphas: dict[str, float] = {}  # file-wide: a module without one takes the most common
    for stem, keys in _group_modules(list(tensors)).items():
        if stem.startswith(_TEXT_ENCODER):
            report.text_encoder_modules += 1
            continue
        report.total += 1
        state: dict[str, Tensor] = {}
        alphas: dict[str, float] = {}
        # Only plain LoRA pairs: a DoRA scale or LoKr factor the converters would drop leaves the module unmatched.
        if fmt != "unknown" and all(_LORA_PARAM.match(k) for k in keys):
            try:
                state, alphas = _convert(fmt, {k: tensors[k] for k in keys})
            except Exception:  # a module the converters cannot place is reported as unmatched, not fatal
                state, alphas = {}, {}
        all_alphas.update(alphas)
        converted.append((stem, state))

    for stem, state in converted:
        found = _low_rank_pairs(state, all_alphas, config, layers)
        if found:
            modules.update(found)
            report.matched += 1
        else:
            unmatched.add(_collapse(stem))
    report.unmatched_prefixes = sorted(unmatched)
    return Adapter(name, sha, report, modules if report.ok else {})


def _low_rank_pairs(
    state: dict[str, Tensor], alphas: dict[str, float], config: dict[str, Any], layers: LayerShapes
) -> dict[str, LowRank]:
    """The converted module(s) of one file module, if every one of them is a LoRA pair that fits a
    layer (name and shape); else {} (the file module counts as unmatched)."""
    targets = {k.split(".lora_")[0] for k in state}
    pairs: dict[str, LowRank] = {}
    for target in targets:
        down, up = state.get(f"{target}.lora_A.weight"), state.get(f"{target}.lora_B.weight")
        if down is None or up is None or down.ndim != 2 or up.ndim != 2 or target not in layers:
            return {}
        n_in, n_out = layers[target]
        rank = down.shape[0]
        if down.shape[1] != n_in or up.shape != (n_out, rank):
            return {}
        s = _scaling(target, rank, alphas, config)
        bias = state.get(f"{target}.lora_B.bias")
        pairs[target] = LowRank(
            down=down.float(), up=up.float() * s, bias=None if bias is None else bias.float().reshape(-1) * s
        )
    return pairs


_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) → sha256: hashed once per version of a file


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _hashes[key] = h.hexdigest()
    return _hashes[key]


# ---------------------------------------------------------------------------------------------
# The directory


class LoraLibrary:
    """The LoRA files under one directory (subfolders allowed), read only from inside it, with the
    last few loaded adapters kept (keyed by the file's sha256: a replaced file is read again)."""

    def __init__(self, root: Path, cache_size: int = 4):
        self.root = root.resolve()
        self.cache: LRU[Adapter] = LRU(cache_size)

    def names(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self.root):  # symlinked folders are not entered
            dirs.sort()
            for file in sorted(files):
                if file.endswith(EXTENSION):
                    path = Path(folder) / file
                    if path.resolve().is_relative_to(self.root):  # a symlink pointing out is skipped
                        found.append(path.relative_to(self.root).as_posix().removesuffix(EXTENSION))
        return found

    def path(self, name: str) -> Path:
        """The file for `name`; EngineError `lora_not_found` for a missing one or one outside the directory."""
        parts = name.replace("\\", "/").split("/")
        if not name or "\0" in name or name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts):
            raise EngineError("lora_not_found", f"LoRA name {name!r} is not a path inside the LoRA directory", "loras")
        path = (self.root / (name + EXTENSION)).resolve()
        if not path.is_relative_to(self.root):
            raise EngineError("lora_not_found", f"LoRA {name!r} points outside the LoRA directory", "loras")
        if not path.is_file():
            raise EngineError("lora_not_found", f"no LoRA named {name!r} (no file {name}{EXTENSION})", "loras")
        return path

    def load(self, name: str, layers: LayerShapes) -> Adapter:
        """The adapter for `name`, checked by the doctor; EngineError when it is refused."""
        path = self.path(name)
        sha = _sha256(path)
        adapter = self.cache.get(sha)
        if adapter is None:
            adapter = read_adapter(path, name, layers)
        elif adapter.name != name:  # the same file under another name
            adapter = Adapter(name, sha, replace(adapter.report, name=name), adapter.modules)
        r = adapter.report
        if r.error is not None:
            raise EngineError("lora_invalid", f"LoRA {name!r}: {r.error}", "loras")
        if not r.ok:
            shown = ", ".join(r.unmatched_prefixes[:12]) + (" …" if len(r.unmatched_prefixes) > 12 else "")
            raise EngineError(
                "lora_unmatched",
                f"LoRA {name!r} ({r.format}): {r.matched} of {r.total} modules match a layer of this model "
                f"(at least {MIN_MATCHED:.0%} must); unmatched: {shown or 'none'}",
                "loras",
            )
        self.cache.put(sha, adapter)
        return adapter

    def report(self, name: str, layers: LayerShapes) -> LoraReport:
        path = self.path(name)
        return read_adapter(path, name, layers).report

    def resolve(self, specs: Sequence[LoraSpec], transformer: nn.Module) -> list[tuple[Adapter, float]]:
        validate_specs(specs)
        if not specs:
            return []
        layers = layer_shapes(transformer)
        return [(self.load(s.name, layers), s.scale) for s in specs]


def used_reports(adapters: Sequence[tuple[Adapter, float]]) -> list[dict[str, Any]]:
    """What a generation records (the result message's `loras`): each adapter's doctor report, its
    scale and its file's sha256. `ok` and `error` are left out: an adapter that was applied passed."""
    out = []
    for a, scale in adapters:
        report = {k: v for k, v in a.report.as_dict().items() if k not in ("ok", "error")}
        out.append({**report, "scale": scale, "sha256": a.sha256})
    return out


# ---------------------------------------------------------------------------------------------
# Applying


class _Delta:
    """A forward hook adding x·Aᵀ·Bᵀ (+ b) to a layer's output: all adapters of one layer in one
    pair of matmuls (their ranks concatenated, each B already times its scales)."""

    def __init__(self, down: Tensor, up: Tensor, bias: Tensor | None):
        self.down, self.up, self.bias = down, up, bias

    def __call__(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor:
        return output + F.linear(F.linear(args[0], self.down), self.up, self.bias)


def _target(transformer: nn.Module, name: str) -> tuple[str, int, int]:
    """(layer to hook, part index (-1: the whole layer), number of parts) for an unfused name."""
    parent, _, leaf = name.rpartition(".")
    if leaf in _FUSED:
        fused, index = _FUSED[leaf]
        attn = transformer.get_submodule(parent)
        if hasattr(attn, fused) and (getattr(attn, "fused_projections", False) or not hasattr(attn, leaf)):
            return f"{parent}.{fused}", index, len(_PARTS[fused])
    return name, -1, 1


def _layer_deltas(transformer: nn.Module, adapters: Sequence[tuple[Adapter, float]]) -> dict[str, _Delta]:
    grouped: dict[str, list[tuple[int, int, LowRank, float]]] = {}
    for adapter, scale in adapters:
        if scale == 0:
            continue
        for name, pair in adapter.modules.items():
            layer, index, parts = _target(transformer, name)
            grouped.setdefault(layer, []).append((index, parts, pair, scale))
    deltas = {}
    for layer, items in grouped.items():
        module = transformer.get_submodule(layer)
        ref = next(t for t in (*module.parameters(), *module.buffers()))
        dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None) or _model_dtype(transformer)
        down = torch.cat([pair.down for _, _, pair, _ in items])  # (Σ rank, in)
        out = module.out_features
        up = torch.zeros(out, down.shape[0])
        bias = torch.zeros(out) if any(pair.bias is not None for _, _, pair, _ in items) else None
        col = 0
        for index, parts, pair, scale in items:
            # A fused layer's part owns its rows only: B is block-diagonal over q, k, v.
            rows = slice(None) if index < 0 else slice(index * out // parts, (index + 1) * out // parts)
            up[rows, col : col + pair.down.shape[0]] = pair.up * scale
            if bias is not None and pair.bias is not None:
                bias[rows] += pair.bias * scale
            col += pair.down.shape[0]
        to = {"device": ref.device, "dtype": dtype}
        deltas[layer] = _Delta(down.to(**to), up.to(**to), None if bias is None else bias.to(**to))
    return deltas


def _model_dtype(transformer: nn.Module) -> torch.dtype:
    return next(p.dtype for p in transformer.parameters() if p.is_floating_point())


@contextlib.contextmanager
def applied(transformer: nn.Module, adapters: Sequence[tuple[Adapter, float]]) -> Iterator[None]:
    """The adapters on `transformer` while the block runs, and removed after, whatever happens.
    Compiled blocks (speed.compile_transformer) run eagerly meanwhile: their graphs were traced
    without hooks, and tracing them with each request's hooks would recompile on every request."""
    deltas = _layer_deltas(transformer, adapters)
    if not deltas:
        yield
        return
    with torch.compiler.set_stance("force_eager"):
        handles = [transformer.get_submodule(layer).register_forward_hook(delta) for layer, delta in deltas.items()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


# ---------------------------------------------------------------------------------------------
# The listing, for the gateway


def listing(lora_dir: Path, model_dir: Path) -> list[dict[str, Any]]:
    library = LoraLibrary(lora_dir)
    layers = meta_layer_shapes(model_dir)
    return [library.report(name, layers).as_dict() for name in library.names()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kontext_engine.lora")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="every LoRA file with the doctor's report, as JSON")
    ls.add_argument("--lora-dir", type=Path, required=True)
    ls.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.lora_dir.is_dir():
        print(f"LoRA directory {args.lora_dir} does not exist", file=sys.stderr)
        return 2
    try:
        entries = listing(args.lora_dir, args.model_dir)
    except ModelDirError as e:
        print(e, file=sys.stderr)
        return 2
    json.dump(entries, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
