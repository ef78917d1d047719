"""Structure preservation of an edit: SSIM of edge maps.

An audio-guided edit should change colour, texture and content where the audio asks for it while keeping the
source's layout. Pixel SSIM punishes the intended change of colour; the SSIM of the two images' *edge maps*
(Sobel gradient magnitude of the luminance, each map scaled to [0, 1] by its own maximum) compares only where the
boundaries are. 1 means the same edges; unrelated images of the same kind score far lower, which is the baseline an
edit's value is read against (``other`` in :func:`edge_ssim_matrix`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] -> (B, 1, H, W) Sobel gradient magnitude of the luminance, each map divided
    by its maximum (a flat image gives zeros)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    luma = (images.float() * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    kernel = torch.stack([_SOBEL_X, _SOBEL_X.T]).unsqueeze(1)  # (2, 1, 3, 3)
    grad = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernel)
    magnitude = grad.pow(2).sum(1, keepdim=True).sqrt()
    peak = magnitude.amax(dim=(2, 3), keepdim=True)
    # below 1e-4 (of a [0, 1] image) the "edges" are float rounding of a flat image
    return torch.where(peak > 1e-4, magnitude / peak.clamp_min(1e-4), torch.zeros_like(magnitude))


def _map_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    return ssim(a, b, data_range=1.0, kernel_size=7, sigma=1.5, reduction="none")


def edge_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair SSIM (B,) of the edge maps of two (B, 3, H, W) batches in [0, 1] (Gaussian window 7, σ 1.5)."""
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return _map_ssim(edge_map(a), edge_map(b))


def edge_ssim_matrix(edits: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """(E, S) edge SSIM of every edit against every source (each image's edge map computed once)."""
    if edits.shape[1:] != sources.shape[1:]:
        raise ValueError(f"edits and sources differ in shape: {tuple(edits.shape)} vs {tuple(sources.shape)}")
    edit_maps, source_maps = edge_map(edits), edge_map(sources)
    return torch.stack([_map_ssim(edit_maps, m.expand_as(edit_maps)) for m in source_maps], dim=1)
