"""Step previews without a VAE decode: a linear map from the 16 latent channels to RGB.

The map is fitted once at load time by least squares on what this model's own VAE encodes from a
fixed colour chart, so it is right for any VAE (the real one and the tiny one alike).
"""

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .sampler import VAE_SCALE


def _colour_chart(size: int = 256) -> Tensor:
    """(1, 3, size, size) in [-1, 1]: smooth hue/brightness gradients and flat colour patches."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    rgb = torch.stack([x, y, 1 - (x + y) / 2])
    patch = size // 4
    colours = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 0]])
    for i, c in enumerate(colours):
        r, col = divmod(i, 4)
        rgb[:, r * patch : (r + 1) * patch, col * patch : (col + 1) * patch] = c[:, None, None].float()
    return rgb[None] * 2 - 1


class LatentPreview:
    def __init__(self, vae: torch.nn.Module):
        chart = _colour_chart()
        param = next(vae.parameters())
        with torch.no_grad():
            z = vae.encode(chart.to(param.device, param.dtype)).latent_dist.mode().float().cpu()
        target = F.avg_pool2d((chart + 1) / 2, VAE_SCALE)  # (1, 3, 32, 32) in [0, 1]
        a = torch.cat([z.flatten(2)[0].T, torch.ones(z[0, 0].numel(), 1)], dim=1)  # (cells, 17)
        b = target.flatten(2)[0].T  # (cells, 3)
        self.weights = torch.linalg.lstsq(a.double(), b.double()).solution.float()  # (17, 3)

    def jpeg(self, z: Tensor, max_side: int = 64) -> tuple[bytes, int, int]:
        """JPEG of one unscaled latent (16, lh, lw), at most max_side pixels on its long side."""
        lh, lw = z.shape[1:]
        rgb = (z.float().cpu().flatten(1).T @ self.weights[:16] + self.weights[16]).T.reshape(3, lh, lw)
        factor = max(1, -(-max(lh, lw) // max_side))
        rgb = F.avg_pool2d(rgb[None], factor)[0] if factor > 1 else rgb
        pixels = (rgb.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", quality=70)
        return buf.getvalue(), pixels.shape[1], pixels.shape[0]
