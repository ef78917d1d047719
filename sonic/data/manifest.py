"""Per-dataset manifest: all clips with a deterministic, class-stratified train/validation split and the
evaluation subset, plus the rejects table (paper §4; SPEC §4 evaluation protocol)."""

from __future__ import annotations

import math

import pandas as pd

from sonic.data.tables import CLIP_COLUMNS, REJECT_COLUMNS, stable_hash

MANIFEST_COLUMNS = CLIP_COLUMNS + ["split", "eval"]


def assign_splits(clips: pd.DataFrame, val_fraction: float, eval_per_class: int, seed: int) -> pd.DataFrame:
    """Add ``split`` (train/val) stratified by label, and ``eval`` (the first ``eval_per_class`` val clips of each
    label in a seeded, order-independent shuffle). Labels with one clip stay in train."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    clips = clips.copy()
    clips["_order"] = [stable_hash(seed, c) for c in clips["clip_id"]]
    clips = clips.sort_values(["label", "_order", "clip_id"], kind="mergesort")
    clips["split"] = "train"
    clips["eval"] = False
    for _, group in clips.groupby("label", sort=True):
        n_val = math.floor(len(group) * val_fraction + 0.5) if len(group) > 1 else 0
        n_val = min(max(n_val, 1 if val_fraction > 0 and len(group) > 1 else 0), len(group) - 1)
        val_index = group.index[:n_val]
        clips.loc[val_index, "split"] = "val"
        clips.loc[val_index[:eval_per_class], "eval"] = True
    return clips.drop(columns="_order").sort_values("clip_id", kind="mergesort")[MANIFEST_COLUMNS]


def build_manifest(
    shard_clips: list[pd.DataFrame], val_fraction: float, eval_per_class: int, seed: int
) -> pd.DataFrame:
    clips = pd.concat([c for c in shard_clips if len(c)], ignore_index=True) if any(len(c) for c in shard_clips) \
        else pd.DataFrame(columns=CLIP_COLUMNS)
    duplicated = clips["clip_id"][clips["clip_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"duplicate clip ids across videos: {duplicated[:5]}")
    return assign_splits(clips.reset_index(drop=True), val_fraction, eval_per_class, seed)


def build_rejects(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    out = pd.concat(tables, ignore_index=True)[REJECT_COLUMNS]
    return out.drop_duplicates().sort_values(["source", "stage", "reason"], kind="mergesort").reset_index(drop=True)
