"""The safety checker: an image classifier (default: an NSFW ViT such as
Falconsai/nsfw_image_detection) loaded from a local directory. An output whose `nsfw` score is at
or above the threshold is never returned."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import ViTForImageClassification

from .errors import ModelDirError

DEFAULT_THRESHOLD = 0.85
FLAGGED_LABEL = "nsfw"


class SafetyChecker:
    def __init__(self, directory: Path, device: torch.device, threshold: float = DEFAULT_THRESHOLD):
        prep_path = directory / "preprocessor_config.json"
        if not (directory / "config.json").is_file() or not prep_path.is_file():
            raise ModelDirError(
                f"safety checker directory {directory}: expected config.json, model.safetensors and "
                "preprocessor_config.json (an image classification model such as Falconsai/nsfw_image_detection)"
            )
        self.model = ViTForImageClassification.from_pretrained(directory, local_files_only=True)
        self.model.to(device).eval().requires_grad_(False)
        labels = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
        if FLAGGED_LABEL not in labels:
            raise ModelDirError(f"{directory / 'config.json'}: id2label has no {FLAGGED_LABEL!r} label")
        self.flag_index = labels[FLAGGED_LABEL]
        prep = json.loads(prep_path.read_text())
        self.size = (int(prep["size"]["width"]), int(prep["size"]["height"]))
        self.resample = int(prep.get("resample", Image.Resampling.BILINEAR))
        self.mean = torch.tensor(prep.get("image_mean", [0.5] * 3)).view(1, 3, 1, 1)
        self.std = torch.tensor(prep.get("image_std", [0.5] * 3)).view(1, 3, 1, 1)
        self.rescale = float(prep.get("rescale_factor", 1 / 255))
        self.device = device
        self.threshold = threshold

    @torch.no_grad()
    def scores(self, images: list[np.ndarray]) -> list[float]:
        """Probability of the flagged label for each (H, W, 3) uint8 image."""
        batch = np.stack([np.asarray(Image.fromarray(im).resize(self.size, self.resample)) for im in images])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() * self.rescale
        x = ((x - self.mean) / self.std).to(self.device, self.model.dtype)
        probs = self.model(pixel_values=x).logits.float().softmax(dim=-1)
        return probs[:, self.flag_index].tolist()
