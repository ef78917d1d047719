"""Training pairs for the miniature models: frames, audio clips, labels and reference captions from manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sonic.data.tables import read_csv
from sonic.pretrain.captions import reference_caption


@dataclass(frozen=True)
class Pair:
    clip_id: str
    dataset: str
    label: str
    frame: str
    audio: str
    split: str
    caption: str


def load_image(path: str | Path, size: int) -> np.ndarray:
    """RGB float32 (size, size, 3) in [0, 1], bicubic resize."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        return np.asarray(im, dtype=np.float32) / 255.0


def load_pairs(manifests: list[str | Path], splits: tuple[str, ...] = ("train",)) -> list[Pair]:
    """All clips of the given splits of the manifests, each with its reference caption (from the full frame)."""
    pairs = []
    for manifest in manifests:
        table = read_csv(manifest)
        for row in table.itertuples():
            if row.split not in splits:
                continue
            with Image.open(row.frame) as im:
                caption = reference_caption(row.label, np.asarray(im.convert("RGB")))
            pairs.append(Pair(row.clip_id, row.dataset, row.label, row.frame, row.audio, row.split, caption))
    return pairs
