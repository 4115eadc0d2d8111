"""The sampling loop, top to bottom: prepare tokens → schedule → denoise(on_step) → unpack.

Plain functions over tensors (KONTEXT.md, steps 4–8). Shapes use B = generations, C = 16 latent
channels, lh×lw = latent grid (image / 8), L = lh/2·lw/2 packed tokens of 64 = C·2·2 features.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

LATENT_CHANNELS = 16
VAE_SCALE = 8  # pixels per latent cell
PATCH = 2  # latent cells per token side: one token covers 16×16 pixels


def latent_grid(width: int, height: int) -> tuple[int, int]:
    """(lh, lw) of the unpacked latents for an image of width × height pixels."""
    return 2 * math.ceil(height / 16), 2 * math.ceil(width / 16)


def pack(z: Tensor) -> Tensor:
    """(B, C, lh, lw) → (B, lh/2·lw/2, C·4); features ordered (c, ph, pw)."""
    b, c, lh, lw = z.shape
    z = z.view(b, c, lh // 2, 2, lw // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(b, (lh // 2) * (lw // 2), c * 4)


def unpack(x: Tensor, lh: int, lw: int) -> Tensor:
    """Inverse of `pack`: (B, L, C·4) → (B, C, lh, lw)."""
    b, _, f = x.shape
    x = x.view(b, lh // 2, lw // 2, f // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, f // 4, lh, lw)


def position_ids(lh: int, lw: int, axis0: float, row0: int = 0, col0: int = 0) -> Tensor:
    """(lh/2·lw/2, 3) RoPE positions (axis0, row, col); axis0 is 0 for target, 1 (or more) for
    conditions; row0/col0 shift a condition's grid (in tokens) so references do not overlap."""
    rows, cols = lh // 2, lw // 2
    ids = torch.zeros(rows, cols, 3)
    ids[..., 0] = axis0
    ids[..., 1] = torch.arange(rows)[:, None] + row0
    ids[..., 2] = torch.arange(cols)[None, :] + col0
    return ids.reshape(rows * cols, 3)


def shift_mu(target_tokens: int, config: dict[str, Any]) -> float:
    """Dynamic shift, linear in the number of target tokens: 0.5 at 256, 1.15 at 4096."""
    lo_seq, hi_seq = config["base_image_seq_len"], config["max_image_seq_len"]
    lo, hi = config["base_shift"], config["max_shift"]
    slope = (hi - lo) / (hi_seq - lo_seq)
    return target_tokens * slope + (lo - slope * lo_seq)


def schedule(num_steps: int, target_tokens: int, config: dict[str, Any]) -> Tensor:
    """(N+1,) float32 sigmas from 1 down to 0, time-shifted by mu (exponential shift)."""
    mu = shift_mu(target_tokens, config)
    sigmas = np.linspace(1.0, 1.0 / num_steps, num_steps).astype(np.float32)
    shifted = math.exp(mu) / (math.exp(mu) + (1.0 / sigmas - 1.0))  # float32, as the reference
    return torch.cat([torch.from_numpy(np.asarray(shifted, dtype=np.float32)), torch.zeros(1)])


def strength_start(num_steps: int, strength: float) -> int:
    """The step of the full schedule an edit at `strength` starts from (img2img, inpainting):
    steps - start steps run, from σ = sigmas[start]; as diffusers' get_timesteps."""
    init = min(num_steps * strength, num_steps)
    return int(max(num_steps - init, 0))


def add_noise(clean: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """The flow-matching forward process: clean latents noised to level σ."""
    return sigma * noise + (1.0 - sigma) * clean


def draw_noise(seeds: list[int], lh: int, lw: int) -> Tensor:
    """(B, C, lh, lw) float32 noise, one CPU generator per seed: a seed gives the same image on
    any device and in any batch."""
    draws = [torch.randn((1, LATENT_CHANNELS, lh, lw), generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
    return torch.cat(draws)


# Fast mode: run the transformer on some steps only and forecast the velocity on the others from
# the last two computed ones (first-order, in σ: a TaylorSeer-style forecast). The first steps set
# the layout and the last one the fine detail, so those always run.
FAST_WARMUP = 3
FAST_TAIL = 1
FAST_INTERVAL = 3  # in between, one step in three runs: 28 steps cost 12 transformer passes


def fast_plan(total: int) -> list[bool]:
    """For each step, whether the transformer runs (True) or the velocity is forecast (False)."""
    return [i < FAST_WARMUP or i >= total - FAST_TAIL or (i - FAST_WARMUP) % FAST_INTERVAL == 0 for i in range(total)]


def forecast(history: list[tuple[Tensor, Tensor]], sigma: Tensor) -> Tensor:
    """Velocity at σ extrapolated linearly from the last two computed (σ, v); the last v if only one."""
    if len(history) == 1:
        return history[0][1]
    (s0, v0), (s1, v1) = history[-2:]
    return v1 + (sigma - s1) * (v1 - v0) / (s1 - s0)


# on_step(step, total_steps, x0_estimate) is called after every step; it may raise to cancel.
StepCallback = Callable[[int, int, Tensor], None]


@dataclass(frozen=True)
class Guidance:
    """True classifier-free guidance (diffusers' negative_prompt + true_cfg_scale): the transformer
    runs a second time on the negative prompt and v = v_neg + scale · (v - v_neg)."""

    txt: Tensor  # (B, 512, D_txt) T5 hidden states of the negative prompt
    pooled: Tensor  # (B, D_pooled)
    scale: float


@dataclass(frozen=True)
class Known:
    """Inpainting: where mask is 0 the latents are replaced after every step by the original
    latents noised to the next σ with the starting noise (diffusers' FluxKontextInpaintPipeline)."""

    clean: Tensor  # (B, L, 64) float32 packed latents of the image being edited
    noise: Tensor  # (B, L, 64) float32 the noise the edit started from
    mask: Tensor  # (B, L, 64) float32, 1 = change, 0 = keep


@torch.no_grad()
def denoise(
    transformer: torch.nn.Module,
    x: Tensor,  # (B, L, 64) float32 starting latents (noise, or the image noised to sigmas[0])
    condition: Tensor,  # (B, Lc, 64) model dtype, condition tokens (never updated); Lc may be 0
    txt: Tensor,  # (B, 512, D_txt) T5 hidden states
    pooled: Tensor,  # (B, D_pooled) CLIP pooled output
    img_ids: Tensor,  # (L + Lc, 3): target ids then condition ids
    txt_ids: Tensor,  # (512, 3) zeros
    sigmas: Tensor,  # (N+1,) float32
    guidance: float,
    on_step: StepCallback | None = None,
    plan: list[bool] | None = None,  # fast mode: which steps run the transformer (None: all)
    negative: Guidance | None = None,
    known: Known | None = None,
) -> Tensor:
    dtype = condition.dtype
    b, n_target = x.shape[0], x.shape[1]
    g = torch.full((b,), guidance, device=x.device, dtype=torch.float32)
    total = sigmas.numel() - 1
    history: list[tuple[Tensor, Tensor]] = []  # (σ, v) of the last two steps the transformer ran

    def velocity(sigma: Tensor, txt: Tensor, pooled: Tensor) -> Tensor:
        # The transformer sees [text | target | condition]; its embeddings scale σ and g by 1000.
        v = transformer(
            hidden_states=torch.cat([x.to(dtype), condition], dim=1),
            timestep=sigma.expand(b).to(device=x.device, dtype=dtype),
            guidance=g,
            pooled_projections=pooled,
            encoder_hidden_states=txt,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        return v[:, :n_target].float()  # the prediction for the condition tokens is discarded

    for i in range(total):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if plan is not None and not plan[i]:
            v = forecast(history, sigma)
        else:
            v = velocity(sigma, txt, pooled)
            if negative is not None:
                v_neg = velocity(sigma, negative.txt, negative.pooled)
                v = v_neg + negative.scale * (v - v_neg)
            history = [*history[-1:], (sigma, v)]
        x0 = x - sigma * v  # the current estimate of the clean latents, for previews
        x = x + (sigma_next - sigma) * v  # Euler in float32
        if known is not None:
            x = (1 - known.mask) * add_noise(known.clean, known.noise, sigma_next) + known.mask * x
        if on_step is not None:
            on_step(i + 1, total, x0)  # between steps: where progress is reported and cancel lands
    return x
