"""Training pairs for the miniature models: frames, audio clips, labels and reference captions from manifests."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sonic.data.tables import read_manifest
from sonic.demo.pretrain.captions import reference_caption


@dataclass(frozen=True)
class Pair:
    clip_id: str
    dataset: str
    label: str
    frame: str
    audio: str
    split: str
    caption: str


def load_pairs(manifests: list[str | Path], splits: tuple[str, ...] = ("train",)) -> list[Pair]:
    """All clips of the given splits of the manifests, each with its reference caption (from the full frame)."""
    pairs = []
    for manifest in manifests:
        table = read_manifest(manifest)
        for row in table.itertuples():
            if row.split not in splits:
                continue
            with Image.open(row.frame) as im:
                caption = reference_caption(row.label, np.asarray(im.convert("RGB")))
            pairs.append(Pair(row.clip_id, row.dataset, row.label, row.frame, row.audio, row.split, caption))
    return pairs


def balanced_weights(labels: list[str], power: float) -> torch.Tensor:
    """Sampling weight count(label) ** -power per item, so rare classes (one-clip Into-the-Wild tags) are seen."""
    counts = Counter(labels)
    return torch.tensor([counts[label] ** -power for label in labels], dtype=torch.float64)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 0 (for ``LambdaLR``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))


def load_text_tower(clip_dir: str | Path):
    """The text tower of the CLIPModel saved in ``clip_dir`` as a frozen ``CLIPTextModel`` (what the SD folder's
    text_encoder/ is). Loading a part of a whole-CLIP checkpoint is intended here, so transformers' report of the
    unused vision weights is silenced."""
    import transformers
    from transformers import CLIPTextModel

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = CLIPTextModel.from_pretrained(clip_dir)
    finally:
        transformers.logging.set_verbosity(level)
    return model.eval().requires_grad_(False)
