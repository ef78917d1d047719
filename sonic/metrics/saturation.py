"""The clipped share: how much of an image is saturated (docs/evaluation.md, "Guidance, measured").

A classifier-free guidance scale too high for a model pushes the decoded image outside [0, 1], where it is clipped:
colours saturate, flat areas turn pure black or white. The clipped share is the fraction of the 8-bit values of an
image set (every pixel, every channel) that are exactly 0 or 255 after the quantisation the saved images go through
(:func:`sonic.images.to_pil`: clamp to [0, 1], times 255, round). A real photograph has some (deep shadows,
highlights); the same share measured on real frames is the reference a generator's share is read against.
"""

from __future__ import annotations

import torch


def quantised(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float images -> the same shape of 8-bit levels 0..255 (as float), as the images are saved."""
    if images.dim() != 4 or images.shape[1] != 3 or not images.dtype.is_floating_point:
        raise ValueError(f"images must be float (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    return (images.detach().float().clamp(0, 1) * 255).round()


def clipped_share(images: torch.Tensor) -> float:
    """The fraction of the 8-bit values of ``images`` ((N, 3, H, W) in [0, 1]; values outside are clamped, as when
    saved) that are 0 or 255, over every pixel and channel of every image."""
    if images.numel() == 0:
        raise ValueError("no images to measure")
    levels = quantised(images)
    return float(((levels == 0) | (levels == 255)).double().mean())
