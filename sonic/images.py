"""Tensor <-> image conversions shared by generation, scoring and editing, without the diffusers import that
:mod:`sonic.models.pipeline` carries (scoring and reference jobs never load a UNet)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> PIL images."""
    arr = (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().float().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]
