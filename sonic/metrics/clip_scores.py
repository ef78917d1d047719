"""CLIP scoring shared by the quality checks and the metrics: image and text features, zero-shot labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pooled(out) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output with ``pooler_output`` in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@torch.no_grad()
def image_features(clip, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """L2-normalised image embeddings (N, D) of (N, 3, H, W) images in [0, 1]; ``clip`` is a
    :class:`sonic.models.registry.Clip` (model, tokenizer, image_processor)."""
    from sonic.images import to_pil

    device = next(clip.model.parameters()).device
    out = []
    for chunk in images.split(batch_size):
        pixels = clip.image_processor(images=to_pil(chunk), return_tensors="pt")["pixel_values"].to(device)
        out.append(F.normalize(pooled(clip.model.get_image_features(pixel_values=pixels)).float(), dim=-1))
    return torch.cat(out).cpu()


@torch.no_grad()
def text_features(clip, texts: list[str]) -> torch.Tensor:
    """L2-normalised text embeddings (T, D)."""
    device = next(clip.model.parameters()).device
    batch = clip.tokenizer(texts, padding=True, return_tensors="pt").to(device)
    return F.normalize(pooled(clip.model.get_text_features(**batch)).float(), dim=-1).cpu()


def zero_shot(clip, images: torch.Tensor, names: list[str]) -> list[str]:
    """The string of ``names`` whose text embedding is closest to each image."""
    sims = image_features(clip, images) @ text_features(clip, names).T  # (N, T)
    return [names[int(k)] for k in sims.argmax(dim=1)]
