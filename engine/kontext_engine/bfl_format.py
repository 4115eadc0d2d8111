"""BFL's single-file transformer checkpoint (`flux1-kontext-dev.safetensors`) ↔ diffusers keys.

BFL fuses q, k, v (and, in single blocks, the MLP input) into one matrix, names RMSNorm weights
`scale`, and orders the final modulation as (shift, scale) where diffusers has (scale, shift).
diffusers' own converter assumes the 3072-wide model; this mapping reads every width from the
model it fills, so the tiny model goes through exactly the same code as the real one.
"""

import torch
from torch import Tensor

from .errors import ModelDirError

# (bfl name, diffusers names it is split into, halves swapped?)
Entry = tuple[str, list[str], bool]

_LINEAR = ("weight", "bias")


def _linear(bfl: str, diffusers: list[str], swap: bool = False) -> list[Entry]:
    return [(f"{bfl}.{p}", [f"{d}.{p}" for d in diffusers], swap) for p in _LINEAR]


def _mapping(num_double: int, num_single: int) -> list[Entry]:
    m: list[Entry] = []
    m += _linear("img_in", ["x_embedder"])
    m += _linear("txt_in", ["context_embedder"])
    for bfl, d in (
        ("time_in", "timestep_embedder"),
        ("vector_in", "text_embedder"),
        ("guidance_in", "guidance_embedder"),
    ):
        m += _linear(f"{bfl}.in_layer", [f"time_text_embed.{d}.linear_1"])
        m += _linear(f"{bfl}.out_layer", [f"time_text_embed.{d}.linear_2"])
    m += _linear("final_layer.linear", ["proj_out"])
    m += _linear("final_layer.adaLN_modulation.1", ["norm_out.linear"], swap=True)
    for i in range(num_double):
        b, d = f"double_blocks.{i}", f"transformer_blocks.{i}"
        m += _linear(f"{b}.img_mod.lin", [f"{d}.norm1.linear"])
        m += _linear(f"{b}.txt_mod.lin", [f"{d}.norm1_context.linear"])
        m += _linear(f"{b}.img_attn.qkv", [f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v"])
        m += _linear(f"{b}.txt_attn.qkv", [f"{d}.attn.add_q_proj", f"{d}.attn.add_k_proj", f"{d}.attn.add_v_proj"])
        m += _linear(f"{b}.img_attn.proj", [f"{d}.attn.to_out.0"])
        m += _linear(f"{b}.txt_attn.proj", [f"{d}.attn.to_add_out"])
        m += _linear(f"{b}.img_mlp.0", [f"{d}.ff.net.0.proj"])
        m += _linear(f"{b}.img_mlp.2", [f"{d}.ff.net.2"])
        m += _linear(f"{b}.txt_mlp.0", [f"{d}.ff_context.net.0.proj"])
        m += _linear(f"{b}.txt_mlp.2", [f"{d}.ff_context.net.2"])
        m += [
            (f"{b}.img_attn.norm.query_norm.scale", [f"{d}.attn.norm_q.weight"], False),
            (f"{b}.img_attn.norm.key_norm.scale", [f"{d}.attn.norm_k.weight"], False),
            (f"{b}.txt_attn.norm.query_norm.scale", [f"{d}.attn.norm_added_q.weight"], False),
            (f"{b}.txt_attn.norm.key_norm.scale", [f"{d}.attn.norm_added_k.weight"], False),
        ]
    for i in range(num_single):
        b, d = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        m += _linear(f"{b}.modulation.lin", [f"{d}.norm.linear"])
        m += _linear(f"{b}.linear1", [f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v", f"{d}.proj_mlp"])
        m += _linear(f"{b}.linear2", [f"{d}.proj_out"])
        m += [
            (f"{b}.norm.query_norm.scale", [f"{d}.attn.norm_q.weight"], False),
            (f"{b}.norm.key_norm.scale", [f"{d}.attn.norm_k.weight"], False),
        ]
    return m


def _swap_halves(t: Tensor) -> Tensor:
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


# (BFL tensor name as stored, first row, end row): a run of rows of one checkpoint tensor.
Piece = tuple[str, int, int]


def diffusers_pieces(
    shapes: dict[str, tuple[int, ...]],
    target: dict[str, tuple[int, ...]],
    num_double: int,
    num_single: int,
    source: str,
) -> dict[str, list[Piece]]:
    """For every diffusers tensor of `target` (name → shape), the runs of rows of the BFL checkpoint's
    tensors (name → shape, as stored) it is made of, in order. Splits and the swapped halves are
    runs of rows of a row-major tensor, so a loader can read each diffusers tensor straight from the
    file. Checks names and shapes, naming the tensor at fault."""
    stored = {k.removeprefix("model.diffusion_model."): k for k in shapes}
    out: dict[str, list[Piece]] = {}
    for bfl, names, swap in _mapping(num_double, num_single):
        if bfl not in stored:
            raise ModelDirError(f"{source}: missing tensor {bfl!r}; not a FLUX.1 Kontext transformer checkpoint")
        name = stored.pop(bfl)
        shape = tuple(shapes[name])
        sizes = [target[n][0] for n in names]
        if not shape or shape[0] != sum(sizes) or shape[1:] != tuple(target[names[0]][1:]):
            raise ModelDirError(
                f"{source}: tensor {bfl!r} has shape {shape}, which does not fit the transformer config "
                f"(expected {sum(sizes)} rows of {tuple(target[names[0]][1:])})"
            )
        total, start = shape[0], 0
        for n, size in zip(names, sizes, strict=True):
            if not swap:
                out[n] = [(name, start, start + size)]
            else:  # row r of the swapped tensor is row (r + total/2) mod total of the stored one
                half = total // 2
                lo, hi = start, start + size
                runs = [(max(lo, 0), min(hi, half), half), (max(lo, half), min(hi, total), -half)]
                out[n] = [(name, a + shift, b + shift) for a, b, shift in runs if a < b]
            start += size
    if stored:
        extra = ", ".join(sorted(stored)[:5])
        raise ModelDirError(f"{source}: unexpected tensors for this transformer config: {extra}")
    return out


def to_diffusers(
    checkpoint: dict[str, Tensor], target: dict[str, Tensor], num_double: int, num_single: int, source: str
) -> dict[str, Tensor]:
    """Convert a BFL state dict into the keys and shapes of `target` (a diffusers state dict)."""
    plan = diffusers_pieces(
        {k: tuple(v.shape) for k, v in checkpoint.items()},
        {k: tuple(v.shape) for k, v in target.items()},
        num_double,
        num_single,
        source,
    )
    out: dict[str, Tensor] = {}
    for n, pieces in plan.items():
        parts = [checkpoint[name][a:b] for name, a, b in pieces]
        out[n] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return out


def to_bfl(state_dict: dict[str, Tensor], num_double: int, num_single: int) -> dict[str, Tensor]:
    """Convert a diffusers FluxTransformer2DModel state dict to BFL's single-file keys."""
    out: dict[str, Tensor] = {}
    for bfl, names, swap in _mapping(num_double, num_single):
        t = torch.cat([state_dict[n] for n in names], dim=0)
        out[bfl] = _swap_halves(t) if swap else t
    return out
