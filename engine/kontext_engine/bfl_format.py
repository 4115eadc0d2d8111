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


def to_diffusers(
    checkpoint: dict[str, Tensor], target: dict[str, Tensor], num_double: int, num_single: int, source: str
) -> dict[str, Tensor]:
    """Convert a BFL state dict into the keys and shapes of `target` (a diffusers state dict)."""
    sd = {k.removeprefix("model.diffusion_model."): v for k, v in checkpoint.items()}
    out: dict[str, Tensor] = {}
    for bfl, names, swap in _mapping(num_double, num_single):
        if bfl not in sd:
            raise ModelDirError(f"{source}: missing tensor {bfl!r}; not a FLUX.1 Kontext transformer checkpoint")
        t = sd.pop(bfl)
        if swap:
            t = _swap_halves(t)
        sizes = [target[n].shape[0] for n in names]
        if t.shape[0] != sum(sizes) or t.shape[1:] != target[names[0]].shape[1:]:
            raise ModelDirError(
                f"{source}: tensor {bfl!r} has shape {tuple(t.shape)}, which does not fit the transformer config "
                f"(expected {sum(sizes)} rows of {tuple(target[names[0]].shape[1:])})"
            )
        out.update(zip(names, t.split(sizes, dim=0), strict=True))
    if sd:
        extra = ", ".join(sorted(sd)[:5])
        raise ModelDirError(f"{source}: unexpected tensors for this transformer config: {extra}")
    return out


def to_bfl(state_dict: dict[str, Tensor], num_double: int, num_single: int) -> dict[str, Tensor]:
    """Convert a diffusers FluxTransformer2DModel state dict to BFL's single-file keys."""
    out: dict[str, Tensor] = {}
    for bfl, names, swap in _mapping(num_double, num_single):
        t = torch.cat([state_dict[n] for n in names], dim=0)
        out[bfl] = _swap_halves(t) if swap else t
    return out
