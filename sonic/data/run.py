"""The data stage's entry points, one per workflow rule: index a dataset, extract one shard, build the manifest.

Each takes explicit arguments (the rule passes them) and writes deterministic CSVs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from sonic.config import Config
from sonic.data.datasets import DatasetSpec, index_dataset
from sonic.data.extract import ExtractSettings, extract_videos
from sonic.data.manifest import build_manifest, build_rejects
from sonic.data.tables import (
    CLIP_COLUMNS, REJECT_COLUMNS, VIDEO_COLUMNS, Video, frame, read_csv, stable_hash, write_csv,
)

log = logging.getLogger(__name__)


def dataset_spec(cfg: Config, name: str) -> DatasetSpec:
    d = cfg.data.dataset(name)
    return DatasetSpec(name=name, format=d["format"], root=d["root"], into_the_wild=d.get("into_the_wild"),
                       aliases=d.get("aliases") or {})


def extract_settings(cfg: Config, fmt: str) -> ExtractSettings:
    data = cfg.data
    return ExtractSettings(
        sample_rate=cfg.audio_encoder.sample_rate,
        segment_seconds=data.segment_seconds,
        whole_file=fmt == "ravdess",
        min_seconds=data.min_clip_seconds,
        min_hits=data.min_hits,
        consecutive_material=fmt == "greatest_hits",
        silence_dbfs=data.silence_dbfs,
        frame_size=data.frame_size,
    )


def run_index(cfg: Config, dataset: str, videos_out: Path, rejects_out: Path) -> tuple[int, int]:
    videos, rejects = index_dataset(dataset_spec(cfg, dataset))
    write_csv(frame([v.row() for v in videos], VIDEO_COLUMNS), videos_out)
    write_csv(frame([r.row() for r in rejects], REJECT_COLUMNS), rejects_out)
    log.info("%s: %d videos indexed, %d files rejected", dataset, len(videos), len(rejects))
    return len(videos), len(rejects)


def shard_of(video_id: str, shards: int) -> int:
    return stable_hash("shard", video_id) % shards


def run_extract(cfg: Config, dataset: str, videos_csv: Path, shard: int, shards: int, out_dir: Path) -> int:
    """Extract the videos of one shard into ``out_dir`` (clips.csv, rejects.csv, frames/, audio/)."""
    import json

    spec = dataset_spec(cfg, dataset)
    table = read_csv(videos_csv)
    videos = [
        Video(r.dataset, r.video_id, r.video, r.audio if isinstance(r.audio, str) else None,
              r.label if isinstance(r.label, str) else None,
              r.native_split if isinstance(r.native_split, str) else None, json.loads(r.meta))
        for r in table.itertuples()
        if shard_of(r.video_id, shards) == shard
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, rejects = extract_videos(videos, extract_settings(cfg, spec.format), out_dir)
    write_csv(frame(rows, CLIP_COLUMNS), out_dir / "clips.csv")
    write_csv(frame([r.row() for r in rejects], REJECT_COLUMNS), out_dir / "rejects.csv")
    log.info("%s shard %d/%d: %d videos -> %d clips, %d rejects", dataset, shard, shards, len(videos), len(rows),
             len(rejects))
    return len(rows)


def run_manifest(cfg: Config, dataset: str, shard_dirs: list[Path], index_rejects: Path, manifest_out: Path,
                 rejects_out: Path) -> pd.DataFrame:
    clips = [read_csv(d / "clips.csv") for d in shard_dirs]
    split_files = cfg.data.split_files(dataset) if cfg.data.split == "file" else None
    manifest, split_rejects = build_manifest(clips, cfg.data.val_fraction, cfg.data.eval_audios_per_class, cfg.seed,
                                             mode=cfg.data.split, split_files=split_files)
    rejects = build_rejects([read_csv(index_rejects)] + [read_csv(d / "rejects.csv") for d in shard_dirs]
                            + [split_rejects])
    write_csv(manifest, manifest_out)
    write_csv(rejects, rejects_out)
    counts = manifest.groupby(["label", "split"]).size().unstack(fill_value=0)
    log.info("manifest %s: %d clips (%s), %d rejects\n%s", manifest_out, len(manifest),
             manifest["split"].value_counts().to_dict(), len(rejects), counts.to_string())
    return manifest
