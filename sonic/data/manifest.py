"""Per-dataset manifest: all clips with a deterministic train/validation split and the evaluation subset, plus
the rejects table (paper §4; docs/evaluation.md evaluation protocol).

``data.split`` chooses how clips are split (:data:`SPLIT_MODES`): ``video`` (default, no source video on both
sides), ``native`` (the dataset's own lists), ``file`` (split lists in the authors' released format) or ``clip``
(per clip, which puts neighbouring windows of one video on both sides). Every mode is seeded and independent of
the row order of its input.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from sonic.data.tables import CLIP_COLUMNS, REJECT_COLUMNS, stable_hash

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = CLIP_COLUMNS + ["split", "eval"]
SPLIT_MODES = ("video", "native", "file", "clip")


def _check_fraction(val_fraction: float) -> None:
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


def assign_splits(clips: pd.DataFrame, val_fraction: float, eval_per_class: int, seed: int) -> pd.DataFrame:
    """The ``clip`` mode: add ``split`` (train/val) stratified by label, and ``eval`` (the first
    ``eval_per_class`` val clips of each label in a seeded, order-independent shuffle). Labels with one clip stay
    in train. Leaky: windows of one source video fall on both sides; kept for comparison with earlier runs."""
    _check_fraction(val_fraction)
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


def _labels(clips: pd.DataFrame) -> pd.Series:
    return clips["label"].fillna("").astype(str)


def val_videos(clips: pd.DataFrame, val_fraction: float, seed: int) -> set[str]:
    """The videos of the validation side of a ``video``-mode split of ``clips``.

    Each label ``L`` has a target of ``val_fraction * n_L`` val clips (``n_L``: its clip count). Videos are
    visited in the order of ``stable_hash(seed, video_id)``; a video goes to val when adding its clips brings
    the val clip counts closer to the targets (the sum over labels of ``|val_L - target_L|`` decreases). A
    video whose clips all carry one label thus joins val exactly when ``val_L + n_video / 2 < target_L``, so
    when every video carries one label, each label ends within one of its videos' clip count of its target
    (the rules below keep that bound). Then, per label, over the videos whose
    most frequent label it is (ties: the smaller label name): when there are at least two of them and
    ``val_fraction > 0`` but none is in val, the smallest (fewest clips, then hash order) joins val; when all
    are in val, the smallest goes back to train. A label with a single video keeps it in train.
    """
    _check_fraction(val_fraction)
    if clips.empty:
        return set()
    counts = pd.crosstab(clips["video_id"], _labels(clips))  # (videos, labels): clips of each label
    rank = {v: (stable_hash(seed, v), v) for v in counts.index}
    counts = counts.loc[sorted(counts.index, key=rank.__getitem__)]
    weights = counts.to_numpy(dtype=float)
    target = val_fraction * weights.sum(axis=0)
    current = np.zeros_like(target)
    val = set()
    for video, w in zip(counts.index, weights, strict=True):
        touched = w > 0
        before = np.abs(current[touched] - target[touched]).sum()
        after = np.abs(current[touched] + w[touched] - target[touched]).sum()
        if after < before:
            val.add(video)
            current += w
    primary = counts.idxmax(axis=1)  # columns are sorted, so ties go to the smaller label name
    sizes = counts.sum(axis=1)
    for _, videos in primary.groupby(primary, sort=True):
        by_size = sorted(videos.index, key=lambda v: (sizes[v], rank[v]))
        in_val = [v for v in by_size if v in val]
        if val_fraction > 0 and len(by_size) >= 2 and not in_val:
            val.add(by_size[0])
        elif len(in_val) == len(by_size):
            val.discard(in_val[0])
    return val


MIN_EVAL_UNLABELLED = 2  # FID and the references need two images at least


def has_labels(clips: pd.DataFrame) -> bool:
    """Whether the clips carry labels (a ``folder`` dataset whose videos sit directly under its root has none)."""
    return bool(clips["label"].notna().any())


def _mark_eval(clips: pd.DataFrame, eval_per_class: int, seed: int) -> pd.Series:
    """``eval``: per label, the first ``eval_per_class`` val clips in round-robin order over the label's val
    videos (videos and the clips within each in ``stable_hash(seed, ·)`` order), so that the evaluation clips
    come from as many distinct videos as possible. A dataset without labels is one class, and takes at least
    :data:`MIN_EVAL_UNLABELLED` clips."""
    if len(clips) and not has_labels(clips):
        eval_per_class = max(eval_per_class, MIN_EVAL_UNLABELLED)
    val = clips[clips["split"] == "val"]
    order = pd.DataFrame({
        "label": _labels(val),
        "video_hash": [stable_hash(seed, v) for v in val["video_id"]],
        "video_id": val["video_id"],
        "clip_hash": [stable_hash(seed, c) for c in val["clip_id"]],
        "clip_id": val["clip_id"],
    }, index=val.index)
    order = order.sort_values(["label", "video_hash", "video_id", "clip_hash", "clip_id"], kind="mergesort")
    order["round"] = order.groupby(["label", "video_id"], sort=False).cumcount()
    order = order.sort_values(["label", "round", "video_hash", "video_id", "clip_hash", "clip_id"], kind="mergesort")
    chosen = order.groupby("label", sort=False).head(eval_per_class).index
    return pd.Series(clips.index.isin(chosen), index=clips.index)


def _finish(clips: pd.DataFrame, eval_per_class: int, seed: int) -> pd.DataFrame:
    clips = clips.copy()
    clips["eval"] = _mark_eval(clips, eval_per_class, seed)
    return clips.sort_values("clip_id", kind="mergesort")[MANIFEST_COLUMNS]


def split_by_video(clips: pd.DataFrame, val_fraction: float, eval_per_class: int, seed: int) -> pd.DataFrame:
    """The ``video`` mode: a label-stratified split in which no video has clips on both sides
    (:func:`val_videos`), and ``eval`` spread over the val videos (:func:`_mark_eval`)."""
    clips = clips.copy()
    val = val_videos(clips, val_fraction, seed)
    clips["split"] = np.where(clips["video_id"].isin(val), "val", "train")
    return _finish(clips, eval_per_class, seed)


NATIVE_SPLITS = {"train": "train", "test": "val"}


def split_native(clips: pd.DataFrame, val_fraction: float, eval_per_class: int, seed: int) -> pd.DataFrame:
    """The ``native`` mode: the dataset's own lists (``native_split`` ``train`` -> train, ``test`` -> val).
    Clips without a native split (Into the Wild merged into Landscape) are split among themselves as in the
    ``video`` mode."""
    clips = clips.copy()
    native = clips["native_split"]
    unknown = sorted(set(native.dropna().astype(str)) - set(NATIVE_SPLITS))
    if unknown:
        raise ValueError(f"native_split values {unknown} are neither of {sorted(NATIVE_SPLITS)}")
    clips["split"] = native.map(NATIVE_SPLITS)
    missing = clips["split"].isna()
    if missing.any():
        rest = clips[missing]
        val = val_videos(rest, val_fraction, seed)
        clips.loc[missing, "split"] = np.where(rest["video_id"].isin(val), "val", "train")
        log.info("native split: %d clips of %d videos have no native split; split by video (%d val videos)",
                 int(missing.sum()), rest["video_id"].nunique(), len(val))
    return _finish(clips, eval_per_class, seed)


def read_split_list(path: str | Path) -> list[str]:
    """The entries of a split list in the authors' format: one per non-empty line, reduced to its stem
    (``landscape-audios/0012_3889.wav`` -> ``0012_3889``)."""
    entries = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            entries.append(re.sub(r"\.[A-Za-z0-9]+$", "", line.rsplit("/", 1)[-1]))
    return entries


def split_from_files(clips: pd.DataFrame, train_file: str | Path, val_file: str | Path, eval_per_class: int,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``file`` mode: the clips named by ``train_file`` / ``val_file`` (:func:`read_split_list`).

    An entry names a clip when it equals a ``clip_id``; otherwise the videos whose ``video_id``, or whose
    ``video_id``'s last ``/``-component, equals it; otherwise (the authors' ``<video>_<index>`` names) the videos
    its part before the last ``_`` names in the same way. A clip named by both lists is an error; clips named by
    neither get split ``unused`` and a reject row each. Returns (manifest, rejects).
    """
    clips = clips.copy()
    clip_rows = pd.Series(clips.index, index=clips["clip_id"])
    by_video: dict[str, list] = {}
    for video, rows in clips.groupby("video_id", sort=True).groups.items():
        for key in {video, video.rsplit("/", 1)[-1]}:
            by_video.setdefault(key, []).extend(rows)

    def named(path) -> set:
        rows, unmatched = set(), []
        entries = read_split_list(path)
        for entry in entries:
            if entry in clip_rows.index:
                rows.add(clip_rows[entry])
            elif entry in by_video:
                rows.update(by_video[entry])
            elif "_" in entry and entry.rsplit("_", 1)[0] in by_video:
                rows.update(by_video[entry.rsplit("_", 1)[0]])
            else:
                unmatched.append(entry)
        if unmatched:
            log.warning("%s: %d of %d entries name no clip or video, e.g. %s", path, len(unmatched), len(entries),
                        unmatched[:5])
        return rows

    train, val = named(train_file), named(val_file)
    both = sorted(clips.loc[sorted(train & val), "clip_id"])
    if both:
        raise ValueError(f"clips named by both {train_file} and {val_file}: {both[:5]}"
                         + (f" and {len(both) - 5} more" if len(both) > 5 else ""))
    clips["split"] = "unused"
    clips.loc[sorted(train), "split"] = "train"
    clips.loc[sorted(val), "split"] = "val"
    unused = clips[clips["split"] == "unused"]
    rejects = pd.DataFrame({
        "dataset": unused["dataset"],
        "source": [f"{s}@{a:.1f}-{b:.1f}s" for s, a, b in zip(
            unused["source"], pd.to_numeric(unused["start"], errors="coerce"),
            pd.to_numeric(unused["end"], errors="coerce"), strict=True)],
        "stage": "split",
        "reason": f"not in the split lists {train_file}, {val_file}",
    }, columns=REJECT_COLUMNS)
    if len(unused):
        log.info("file split: %d clips are in neither %s nor %s (split 'unused')", len(unused), train_file, val_file)
    return _finish(clips, eval_per_class, seed), rejects


def split_clips(clips: pd.DataFrame, mode: str, val_fraction: float, eval_per_class: int, seed: int,
                split_files: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``clips`` by ``mode`` (one of :data:`SPLIT_MODES`); ``split_files`` ({train, val} paths) is the
    ``file`` mode's lists. Returns (manifest, rejects of the split)."""
    no_rejects = pd.DataFrame(columns=REJECT_COLUMNS)
    if mode == "video":
        return split_by_video(clips, val_fraction, eval_per_class, seed), no_rejects
    if mode == "native":
        return split_native(clips, val_fraction, eval_per_class, seed), no_rejects
    if mode == "file":
        if not split_files or not split_files.get("train") or not split_files.get("val"):
            raise ValueError("the file split needs split_files with a train and a val list")
        return split_from_files(clips, split_files["train"], split_files["val"], eval_per_class, seed)
    if mode == "clip":
        return assign_splits(clips, val_fraction, eval_per_class, seed), no_rejects
    raise ValueError(f"unknown split mode {mode!r}; one of {list(SPLIT_MODES)}")


def build_manifest(
    shard_clips: list[pd.DataFrame], val_fraction: float, eval_per_class: int, seed: int, *, mode: str,
    split_files: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All clips of the shards, split by ``mode`` (:func:`split_clips`); returns (manifest, rejects of the
    split)."""
    clips = pd.concat([c for c in shard_clips if len(c)], ignore_index=True) if any(len(c) for c in shard_clips) \
        else pd.DataFrame(columns=CLIP_COLUMNS)
    duplicated = clips["clip_id"][clips["clip_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"duplicate clip ids across videos: {duplicated[:5]}")
    return split_clips(clips.reset_index(drop=True), mode, val_fraction, eval_per_class, seed, split_files)


def build_rejects(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    out = pd.concat(tables, ignore_index=True)[REJECT_COLUMNS]
    return out.drop_duplicates().sort_values(["source", "stage", "reason"], kind="mergesort").reset_index(drop=True)
