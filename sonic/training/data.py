"""What both training stages read: the train clips of one dataset with their labels, frames, captions and cached
CLAP embeddings (computed once per dataset by the ``clap_features`` rule and never re-encoded here)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sonic.data.features import load_clap_cache
from sonic.data.tables import read_csv, read_manifest
from sonic.errors import InputError
from sonic.images import resize_shorter_side


@dataclass(frozen=True)
class ClipSet:
    clip_ids: list[str]
    labels: list[str]  # "" for every clip of a dataset without labels
    frames: list[str]
    captions: list[str] | None
    clap: torch.Tensor  # (N, d) cached CLAP embeddings, row i = clip i
    videos: list[str] | None = None  # the source video of each clip

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def labelled(self) -> bool:
        """Whether the clips carry labels (a ``folder`` dataset whose videos sit directly under its root has none)."""
        return any(self.labels)

    def contrastive_classes(self) -> list[str]:
        """What stage 1's positives share and its negatives differ in: the label; without labels, the source video
        (another window of the same recording is the positive, windows of other recordings the negatives)."""
        if self.labelled:
            return self.labels
        if self.videos is None:
            raise ValueError("clips without labels and without their source videos: stage 1 has no classes")
        return self.videos


def load_clip_set(manifest: str | Path, clap: str | Path, clap_index: str | Path, captions: str | Path | None = None,
                  splits: tuple[str, ...] = ("train",)) -> ClipSet:
    """The clips of ``splits`` in ``manifest`` with their cached CLAP embeddings (and BLIP-2 captions when given).

    A clip missing from the CLAP cache or from the captions is an error naming the file and the clip: the caches
    are built from the same manifest, so a gap means a stale cache.
    """
    table = read_manifest(manifest)
    table = table[table["split"].isin(splits)].reset_index(drop=True)
    if table.empty:
        raise ValueError(f"{manifest}: no clips in split(s) {list(splits)}")
    embeddings, rows = load_clap_cache(clap, clap_index)
    missing = [c for c in table["clip_id"] if c not in rows]
    if missing:
        raise ValueError(f"{clap_index}: {len(missing)} clips of {manifest} are not in the CLAP cache, e.g. {missing[:3]}"
                       " (rebuild the cache)")
    caption_list = None
    if captions is not None:
        cap = read_csv(captions)
        by_id = dict(zip(cap["clip_id"].astype(str), cap["caption"].fillna("").astype(str), strict=True))
        missing = [c for c in table["clip_id"] if c not in by_id]
        if missing:
            raise ValueError(f"{captions}: no caption for {len(missing)} clips of {manifest}, e.g. {missing[:3]}")
        caption_list = [by_id[c] for c in table["clip_id"]]
    index = torch.tensor([rows[c] for c in table["clip_id"]], dtype=torch.long)
    return ClipSet(
        clip_ids=table["clip_id"].astype(str).tolist(),
        labels=table["label"].fillna("").astype(str).tolist(),
        frames=table["frame"].astype(str).tolist(),
        captions=caption_list,
        clap=embeddings[index].float(),
        videos=table["video_id"].astype(str).tolist() if "video_id" in table else None,
    )


class FrameStore:
    """Frames resized so that the shorter side is ``side`` pixels (uint8 (3, H, W)), kept in an LRU cache of
    ``cache_size`` frames, and the stage-2 augmentation: a random ``crop`` x ``crop`` crop and a random
    horizontal flip (paper §3.4), drawn from the step's generator."""

    def __init__(self, paths: list[str], side: int, crop: int, cache_size: int = 4096):
        if crop > side:
            raise ValueError(f"crop {crop} is larger than the resized frame side {side}")
        self.paths, self.side, self.crop, self.cache_size = list(paths), side, crop, cache_size
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def frame(self, i: int) -> torch.Tensor:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        try:
            with Image.open(self.paths[i]) as img:
                img = resize_shorter_side(img.convert("RGB"), self.side)
                x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()  # (3, H, W) uint8
        except OSError as err:  # PIL's UnidentifiedImageError is an OSError
            raise InputError(f"{self.paths[i]}: cannot read the frame ({err})") from err
        self._cache[i] = x
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return x

    def batch(self, indices: list[int], generator: torch.Generator) -> torch.Tensor:
        """(B, 3, crop, crop) in [-1, 1]: random crop and random horizontal flip of each frame."""
        out = []
        for i in indices:
            x = self.frame(i)
            h, w = x.shape[-2:]
            y0 = int(torch.randint(h - self.crop + 1, (1,), generator=generator))
            x0 = int(torch.randint(w - self.crop + 1, (1,), generator=generator))
            x = x[:, y0 : y0 + self.crop, x0 : x0 + self.crop]
            if float(torch.rand(1, generator=generator)) < 0.5:
                x = x.flip(-1)
            out.append(x)
        return torch.stack(out).float() / 127.5 - 1.0
