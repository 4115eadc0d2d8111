"""diffusers' Kontext pipelines over the tiny model's parts, and a helper that keeps the final
latents: what the parity tests compare our loop against (CPU, float32)."""

from pathlib import Path
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextInpaintPipeline, FluxKontextPipeline

from kontext_engine.loading import KontextModel

TOLERANCE = 1e-4


def build(cls: type, model: KontextModel, tiny_dir: Path) -> Any:
    pipe = cls(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_dir / "scheduler"),
        vae=model.vae,
        text_encoder=model.clip,
        tokenizer=model.clip_tokenizer,
        text_encoder_2=model.t5,
        tokenizer_2=model.t5_tokenizer,
        transformer=model.transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def kontext(model: KontextModel, tiny_dir: Path) -> FluxKontextPipeline:
    return build(FluxKontextPipeline, model, tiny_dir)


def kontext_inpaint(model: KontextModel, tiny_dir: Path) -> FluxKontextInpaintPipeline:
    return build(FluxKontextInpaintPipeline, model, tiny_dir)


def run(pipe: Any, seeds: tuple[int, ...], width: int, height: int, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(final packed latents, decoded images (B, 3, h, w)) of one pipeline call at our size."""
    final: dict[str, torch.Tensor] = {}

    def keep_latents(pipe, i, t, kw):  # type: ignore[no-untyped-def]
        final["latents"] = kw["latents"].clone()
        return kw

    images = pipe(
        height=height,
        width=width,
        max_area=width * height,  # keep the bucket: diffusers would otherwise floor to 1 MP
        num_images_per_prompt=len(seeds),
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        output_type="pt",
        callback_on_step_end=keep_latents,
        **kwargs,
    ).images
    return final["latents"], images


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()
