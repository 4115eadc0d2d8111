"""One edit, top to bottom: prompt → condition → noise → denoise → decode → safety.

`Editor` holds the loaded model and the caches; `edit()` is the whole hot path.
"""

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import conditioning, sampler
from .cache import LRU
from .errors import EngineError
from .loading import KontextModel
from .lora import LoraLibrary, LoraSpec, applied, used_reports
from .preview import LatentPreview
from .resolution import PREFERRED_RESOLUTIONS, condition_size
from .safety import SafetyChecker
from .speed import fastest_attention

log = logging.getLogger("kontext_engine")

T5_MAX_TOKENS = 512  # what FLUX.1 Kontext was trained with; longer prompts are cut
CLIP_MAX_TOKENS = 77


def resize_condition(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A condition image as the model sees it: (h, w, 3) uint8 resized to size (w, h), Lanczos, no crop."""
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


@dataclass(frozen=True)
class EditRequest:
    image: np.ndarray | None  # (H, W, 3) uint8 RGB, input_image as decoded by the gateway; None: text-to-image
    prompt: str
    aspect_ratio: str = "match_input_image"
    num_inference_steps: int = 28
    guidance: float = 2.5
    seeds: tuple[int, ...] = (0,)
    disable_safety_checker: bool = False
    fast: bool = False  # forecast some steps instead of running the transformer (sampler.fast_plan)
    # input_image_2..4, each (H, W, 3) uint8 RGB; placed in RoPE space by reference_method,
    # "offset" (all at index 1, side by side) or "index" (index 2, 3, 4): docs/references.md.
    references: tuple[np.ndarray, ...] = ()
    reference_method: str = "offset"
    mask: np.ndarray | None = None  # (H, W) uint8 at the input image's size: 255 = change, 0 = keep
    strength: float = 1.0  # below 1: start from the input image noised to this level (img2img)
    negative_prompt: str | None = None  # with true_cfg_scale > 1: a second transformer pass per step
    true_cfg_scale: float = 1.0
    loras: tuple[LoraSpec, ...] = ()  # LoRA adapters (name, scale) for this request only: docs/loras.md
    # "input": the server puts each output back at the input's size (full_resolution.py, after edit);
    # the Editor itself always works at the bucket. preserve_unedited (None: true with "input").
    output_resolution: str = "bucket"
    preserve_unedited: bool | None = None


@dataclass
class EditResult:
    images: list[np.ndarray]  # B × (h, w, 3) uint8
    width: int
    height: int
    latents: Tensor  # (B, L, 64) float32: the final packed latents
    decoded: Tensor  # (B, 3, h, w) float32 in [0, 1], before rounding
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache: dict[str, bool] = field(default_factory=dict)
    prompt_tokens: dict[str, int | bool] = field(default_factory=dict)  # Editor.prompt_tokens
    loras: list[dict[str, object]] = field(default_factory=list)  # the doctor's report of each adapter used


@dataclass
class Conditions:
    tokens: Tensor  # (1, Lc, 64) model dtype, every condition image's tokens (Lc = 0: text-to-image)
    ids: Tensor  # (Lc, 3) their position ids
    image: Tensor | None  # (1, L, 64) the input image's own tokens (what a masked edit starts from)
    hits: list[bool] = field(default_factory=list)  # condition cache hit per image: input_image first


# on_step(step, total_steps, preview) where preview() renders a JPEG of generation 0 on demand.
ProgressCallback = Callable[[int, int, Callable[[], tuple[bytes, int, int]]], None]


class Editor:
    def __init__(
        self,
        model: KontextModel,
        safety: SafetyChecker | None,
        prompt_cache_size: int = 32,
        condition_cache_size: int = 16,
        max_condition_tokens: int = conditioning.DEFAULT_MAX_CONDITION_TOKENS,
        lora_dir: Path | None = None,
    ):
        largest = max(conditioning.tokens(w, h) for w, h in PREFERRED_RESOLUTIONS)
        if max_condition_tokens < largest:
            raise ValueError(f"max_condition_tokens must be at least {largest} (one condition image)")
        self.max_condition_tokens = max_condition_tokens
        self.m = model
        self.safety = safety
        self.loras = None if lora_dir is None else LoraLibrary(lora_dir)  # KONTEXT_LORA_DIR
        self.prompts: LRU[tuple[Tensor, Tensor]] = LRU(prompt_cache_size)
        self.conditions: LRU[Tensor] = LRU(condition_cache_size)
        self.preview = LatentPreview(model.vae)
        self.vae_scale = float(model.vae.config.scaling_factor)
        self.vae_shift = float(model.vae.config.shift_factor)
        self._last_resized: tuple[np.ndarray, tuple[int, int], np.ndarray] | None = None

    def resized(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """`image` as encode_condition resized it to `size`: the last one it resized when that was
        this very array at this size (a Lanczos pass at 12 MP is ~0.2 s), else resized again."""
        last = self._last_resized
        if last is not None and last[0] is image and last[1] == size:
            return last[2]
        return resize_condition(image, size)

    @contextlib.contextmanager
    def _on_device(self, *parts: torch.nn.Module) -> Iterator[None]:
        """Where `parts` run. Nothing moves here, in low-memory mode too: the transformer, CLIP and
        the VAE stay resident (never evicted for one another), and T5's blocks stream in from pinned
        host memory by themselves, one at a time (placement.StreamedBlocks)."""
        yield

    def _sync(self) -> float:
        if self.m.device.type == "cuda":
            torch.cuda.synchronize(self.m.device)
        return time.perf_counter()

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> tuple[Tensor, Tensor, bool]:
        """(pooled (1, D_pooled), txt (1, 512, D_txt), cache hit). CLIP gives only its pooled
        output; T5 gives hidden states over 512 padded tokens, no attention mask (as trained)."""
        hit = self.prompts.get(prompt)
        if hit is not None:
            return hit[0], hit[1], True
        m = self.m
        with self._on_device(m.clip, m.t5):
            pooled, txt = self._encode_prompt(prompt)
        self.prompts.put(prompt, (pooled, txt))
        return pooled, txt, False

    def prompt_tokens(self, prompt: str) -> dict[str, int | bool]:
        """How many tokens the prompt is for each encoder, and each encoder's limit: T5 keeps 512
        (what the transformer reads), CLIP 77 (only its pooled summary is used). `truncated`:
        T5 dropped the rest. Counts include the end token; tokenizing costs about a millisecond."""
        m = self.m
        t5 = len(m.t5_tokenizer(prompt, truncation=False).input_ids)
        clip = len(m.clip_tokenizer(prompt, truncation=False).input_ids)
        return {
            "t5": t5,
            "t5_max": T5_MAX_TOKENS,
            "clip": clip,
            "clip_max": CLIP_MAX_TOKENS,
            "truncated": t5 > T5_MAX_TOKENS,
        }

    def _encode_prompt(self, prompt: str) -> tuple[Tensor, Tensor]:
        m = self.m
        clip_ids = m.clip_tokenizer(
            prompt, padding="max_length", max_length=CLIP_MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        pooled = m.clip(clip_ids.to(m.device), output_hidden_states=False).pooler_output.to(m.dtype)
        t5_ids = m.t5_tokenizer(
            prompt, padding="max_length", max_length=T5_MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        txt = m.t5(t5_ids.to(m.device), output_hidden_states=False)[0].to(m.dtype)
        return pooled, txt

    @torch.no_grad()
    def encode_condition(self, image: np.ndarray, size: tuple[int, int] | None = None) -> tuple[Tensor, int, int, bool]:
        """(tokens (1, Lc, 64), lh, lw, cache hit) for a condition image, resized (Lanczos, no
        crop) to `size` (default: its bucket), VAE-encoded (distribution mode), shifted and
        scaled, packed. Cached by the image's hash and the size."""
        h, w = image.shape[:2]
        cw, ch = size or condition_size(w, h)
        lh, lw = sampler.latent_grid(cw, ch)
        key = (hashlib.sha256(image.tobytes()).hexdigest(), w, h, cw, ch)
        hit = self.conditions.get(key)
        if hit is not None:
            return hit, lh, lw, True
        resized = resize_condition(image, (cw, ch))
        self._last_resized = (image, (cw, ch), resized)  # output_resolution input compares against it
        # (1, 3, h, w) over (1, h, w, 3) memory, as diffusers' image processor hands the VAE its
        # input: the convolutions then take the same (channels-last) kernels and the same sums.
        x = torch.from_numpy(resized[None].astype(np.float32) / 255.0).permute(0, 3, 1, 2) * 2 - 1
        with self._on_device(self.m.vae):
            z = self.m.vae.encode(x.to(self.m.device, self.m.dtype)).latent_dist.mode()
        tokens = sampler.pack((z - self.vae_shift) * self.vae_scale)
        self.conditions.put(key, tokens)
        return tokens, lh, lw, False

    def encode_conditions(self, req: EditRequest) -> "Conditions":
        """All the condition images of a request, each encoded (or served from the cache) at its
        size, concatenated with their position ids (conditioning.placements). With a mask and
        references, the references alone condition the edit and the image is only the one
        inpainted (diffusers' image_reference); otherwise the image comes first."""
        if req.image is None:
            return Conditions(torch.zeros(1, 0, 64, dtype=self.m.dtype, device=self.m.device), torch.zeros(0, 3), None)
        sizes = conditioning.encode_sizes(req, self.max_condition_tokens)
        encoded = [
            self.encode_condition(im, size) for im, size in zip((req.image, *req.references), sizes, strict=True)
        ]
        shown = encoded[1:] if req.mask is not None and req.references else encoded
        return Conditions(
            tokens=torch.cat([t for t, _, _, _ in shown], dim=1),
            ids=conditioning.condition_ids([(lh, lw) for _, lh, lw, _ in shown], req.reference_method),
            image=encoded[0][0],
            hits=[hit for _, _, _, hit in encoded],
        )

    @torch.no_grad()
    def decode(self, x: Tensor, lh: int, lw: int) -> Tensor:
        """(B, L, 64) packed latents → (B, 3, h, w) float32 in [0, 1]."""
        z = sampler.unpack(x, lh, lw) / self.vae_scale + self.vae_shift
        with self._on_device(self.m.vae):
            # Low-memory mode decodes one generation at a time: the VAE's 1024² activations (≈ 1.6 GB
            # each) are its largest peak (docs/performance.md, memory per mode).
            zs = z.split(1) if self.m.offload else [z]
            image = torch.cat([self.m.vae.decode(c.to(self.m.device, self.m.dtype), return_dict=False)[0] for c in zs])
        return (image.float() / 2 + 0.5).clamp(0, 1)

    def edit(
        self, req: EditRequest, on_step: ProgressCallback | None = None, noise: Tensor | None = None
    ) -> EditResult:
        m = self.m
        width, height = conditioning.target_size(req)  # checks the request first
        if req.loras and self.loras is None:
            raise EngineError("lora_not_found", "this engine has no LoRA directory (KONTEXT_LORA_DIR)", "loras")
        adapters = self.loras.resolve(req.loras, m.transformer) if self.loras is not None else []
        t0 = self._sync()
        pooled, txt, prompt_hit = self.encode_prompt(req.prompt)
        cache = {"prompt": prompt_hit}  # and negative_prompt, condition, input_image_2..4
        negative = None
        if conditioning.uses_true_cfg(req):
            neg_pooled, neg_txt, cache["negative_prompt"] = self.encode_prompt(req.negative_prompt or "")
            negative = sampler.Guidance(neg_txt, neg_pooled, req.true_cfg_scale)  # batch 1: _denoise expands
        t1 = self._sync()
        cond = self.encode_conditions(req)
        cache["condition"] = bool(cond.hits) and cond.hits[0]  # False for text-to-image
        cache.update({f"input_image_{i}": hit for i, hit in enumerate(cond.hits[1:], 2)})
        t2 = self._sync()

        lh, lw = sampler.latent_grid(width, height)
        if noise is None:
            noise = sampler.draw_noise(list(req.seeds), lh, lw)  # (B, 16, lh, lw), CPU float32
        x = sampler.pack(noise).to(m.device)  # (B, L, 64) float32
        img_ids = torch.cat([sampler.position_ids(lh, lw, 0), cond.ids]).to(m.device, m.dtype)
        txt_ids = torch.zeros(txt.shape[1], 3, device=m.device, dtype=m.dtype)
        sigmas = sampler.schedule(req.num_inference_steps, x.shape[1], m.scheduler_config).to(m.device)
        sigmas = sigmas[sampler.strength_start(req.num_inference_steps, req.strength) :]
        known = None
        if conditioning.starts_from_image(req) and cond.image is not None:
            clean = cond.image.float().expand_as(x)
            x, noise_tokens = sampler.add_noise(clean, x, sigmas[0]), x
            if req.mask is not None:
                mask = conditioning.mask_tokens(req.mask, width, height).to(m.device).expand_as(x)
                known = sampler.Known(clean, noise_tokens, mask)

        def step_callback(step: int, total: int, x0: Tensor) -> None:
            if on_step is not None:
                on_step(step, total, lambda: self.preview.jpeg(self._unscale(x0[:1], lh, lw)[0]))

        with self._on_device(m.transformer), fastest_attention(m.device), applied(m.transformer, adapters):
            x = self._denoise(
                req, x, cond.tokens, txt, pooled, img_ids, txt_ids, sigmas, step_callback, negative, known
            )
        t3 = self._sync()
        decoded = self.decode(x, lh, lw)
        t4 = self._sync()
        # HWC uint8, made contiguous on the device: the host gets rows it can write out as they are.
        images = list((decoded * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy())
        if self.safety is not None and not req.disable_safety_checker:
            for i, score in enumerate(self.safety.scores(images)):
                if score >= self.safety.threshold:
                    raise EngineError(
                        "content_flagged",
                        f"the safety checker flagged generation {i} (seed {req.seeds[i]}, nsfw score "
                        f"{score:.2f} >= {self.safety.threshold}); no image is returned",
                    )
        t5 = self._sync()
        ms = lambda a, z: round((z - a) * 1000, 1)  # noqa: E731
        return EditResult(
            images=images,
            width=width,
            height=height,
            latents=x.float().cpu(),
            decoded=decoded.cpu(),
            timings_ms={
                "text_encode": ms(t0, t1),
                "vae_encode": ms(t1, t2),
                "denoise": ms(t2, t3),
                "vae_decode": ms(t3, t4),
                "safety": ms(t4, t5),
                "total": ms(t0, t5),
            },
            cache=cache,
            prompt_tokens=self.prompt_tokens(req.prompt),
            loras=used_reports(adapters),
        )

    def _denoise(
        self,
        req: EditRequest,
        x: Tensor,
        cond: Tensor,
        txt: Tensor,
        pooled: Tensor,
        img_ids: Tensor,
        txt_ids: Tensor,
        sigmas: Tensor,
        on_step: sampler.StepCallback,
        negative: sampler.Guidance | None = None,
        known: sampler.Known | None = None,
    ) -> Tensor:
        b = x.shape[0]
        plan = sampler.fast_plan(sigmas.numel() - 1) if req.fast else None
        if negative is not None:
            negative = sampler.Guidance(negative.txt.expand(b, -1, -1), negative.pooled.expand(b, -1), negative.scale)
        return sampler.denoise(
            self.m.transformer,
            x,
            cond.expand(b, -1, -1),
            txt.expand(b, -1, -1),
            pooled.expand(b, -1),
            img_ids,
            txt_ids,
            sigmas,
            req.guidance,
            on_step,
            plan,
            negative,
            known,
        )

    def warm_up(self, buckets: list[tuple[int, int]], batches: tuple[int, ...] = (1, 2), steps: int = 2) -> None:
        """Short edits per output bucket and batch size before `ready`, so compilation and
        autotuning happen at start: batch 1 and batch 2 (torch specialises size 1; from 2 on the
        batch is dynamic), so a request with one seed or several never compiles while it runs."""
        runs = [(w, h, b) for w, h in buckets for b in batches]
        for i, (w, h, b) in enumerate(runs, 1):
            log.info("warm-up %d/%d: %dx%d, batch %d", i, len(runs), w, h, b)
            t = time.perf_counter()
            image = np.zeros((h, w, 3), dtype=np.uint8)
            seeds = tuple(range(b))
            self.edit(
                EditRequest(image, "warm-up", "match_input_image", steps, 2.5, seeds, disable_safety_checker=True)
            )
            log.info("warm-up %d/%d done in %.1f s", i, len(runs), time.perf_counter() - t)
        self.prompts.clear()
        self.conditions.clear()

    def _unscale(self, x: Tensor, lh: int, lw: int) -> Tensor:
        return sampler.unpack(x, lh, lw) / self.vae_scale + self.vae_shift
