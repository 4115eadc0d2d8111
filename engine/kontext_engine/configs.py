"""Named model configurations: `dev` is FLUX.1 Kontext [dev]; `tiny` is the same architecture at
toy width for CPU tests and the demo default (see KONTEXT.md). The tiny generator builds from
`tiny`; the GPU benchmark builds `dev` with random weights when real ones are absent."""

from dataclasses import dataclass, field
from typing import Any

# The real scheduler_config.json of black-forest-labs/FLUX.1-Kontext-dev; the tiny model ships it
# unchanged so the dynamic shift is exercised exactly.
SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "invert_sigmas": False,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "shift_terminal": None,
    "stochastic_sampling": False,
    "time_shift_type": "exponential",
    "use_beta_sigmas": False,
    "use_dynamic_shifting": True,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}

MODEL_INDEX: dict[str, Any] = {
    "_class_name": "FluxKontextPipeline",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "FluxTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


@dataclass(frozen=True)
class ModelPreset:
    name: str
    transformer: dict[str, Any]  # FluxTransformer2DModel kwargs
    vae: dict[str, Any]  # AutoencoderKL kwargs
    clip: dict[str, Any]  # CLIPTextConfig kwargs (vocab size comes from the tokenizer for tiny)
    t5: dict[str, Any]  # T5Config kwargs
    clip_max_length: int = 77
    t5_max_length: int = 512
    notes: dict[str, str] = field(default_factory=dict)


_VAE_COMMON: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,  # four blocks: 8× downsampling
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 16,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "sample_size": 1024,
}

PRESETS: dict[str, ModelPreset] = {
    "dev": ModelPreset(
        name="dev",
        transformer={
            "patch_size": 1,
            "in_channels": 64,
            "num_layers": 19,
            "num_single_layers": 38,
            "attention_head_dim": 128,
            "num_attention_heads": 24,
            "joint_attention_dim": 4096,
            "pooled_projection_dim": 768,
            "guidance_embeds": True,
            "axes_dims_rope": [16, 56, 56],
        },
        vae={**_VAE_COMMON, "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2},
        clip={
            "vocab_size": 49408,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "projection_dim": 768,
        },
        t5={
            "vocab_size": 32128,
            "d_model": 4096,
            "d_kv": 64,
            "d_ff": 10240,
            "num_layers": 24,
            "num_heads": 64,
            "feed_forward_proj": "gated-gelu",
            "is_encoder_decoder": False,
            "tie_word_embeddings": False,
        },
    ),
    "tiny": ModelPreset(
        name="tiny",
        transformer={
            "patch_size": 1,
            "in_channels": 64,
            "num_layers": 2,
            "num_single_layers": 2,
            "attention_head_dim": 16,
            "num_attention_heads": 2,
            "joint_attention_dim": 32,
            "pooled_projection_dim": 32,
            "guidance_embeds": True,
            "axes_dims_rope": [4, 4, 8],
        },
        vae={**_VAE_COMMON, "block_out_channels": [8, 8, 8, 8], "layers_per_block": 1, "norm_num_groups": 4},
        clip={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "projection_dim": 32,
        },
        t5={
            "d_model": 32,
            "d_kv": 16,
            "d_ff": 64,
            "num_layers": 2,
            "num_heads": 2,
            "feed_forward_proj": "gated-gelu",
            "is_encoder_decoder": False,
            "tie_word_embeddings": False,
        },
    ),
}


def preset_matching(transformer_config: dict[str, Any]) -> str:
    """`dev`, `tiny` or `custom`: which preset a loaded transformer config is."""
    for name, preset in PRESETS.items():
        if all(transformer_config.get(k) == v for k, v in preset.transformer.items() if k != "axes_dims_rope"):
            return name
    return "custom"
