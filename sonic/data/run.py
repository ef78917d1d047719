"""The data stage's entry points, one per workflow rule: check or index a dataset, extract one shard, build the
manifest.

Each takes explicit arguments (the rule passes them) and writes deterministic CSVs.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pandas as pd

from sonic.config import Config, ConfigError
from sonic.data.datasets import VGGSOUND_MIN_SECONDS, VGGSOUND_SECONDS, DatasetSpec, index_dataset
from sonic.data.extract import ExtractSettings, extract_videos
from sonic.data.manifest import build_manifest, build_rejects
from sonic.data.tables import (
    CLIP_COLUMNS,
    REJECT_COLUMNS,
    VIDEO_COLUMNS,
    Video,
    frame,
    read_csv,
    stable_hash,
    write_csv,
)

log = logging.getLogger(__name__)


def dataset_spec(cfg: Config, name: str) -> DatasetSpec:
    return DatasetSpec.from_config(name, cfg.data.dataset(name))


@contextlib.contextmanager
def config_source(cfg: Config):
    """A :class:`ConfigError` raised inside (a vggsound dataset's ``labels`` against its CSV) names the config."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(f"{cfg.source}: {err}") from None


def extract_settings(cfg: Config, fmt: str) -> ExtractSettings:
    """How a format's videos become clips: windows of ``data.segment_seconds`` (Greatest Hits with its
    single-material filter, Landscape, ``folder``), the whole song (RAVDESS) or one 10 s clip per file (VGGSound)."""
    data = cfg.data
    vggsound = fmt == "vggsound"
    return ExtractSettings(
        sample_rate=cfg.audio_encoder.sample_rate,
        segment_seconds=data.segment_seconds,
        whole_file=fmt in ("ravdess", "vggsound"),
        min_seconds=VGGSOUND_MIN_SECONDS if vggsound else data.min_clip_seconds,
        max_seconds=VGGSOUND_SECONDS if vggsound else None,
        min_hits=data.min_hits,
        consecutive_material=fmt == "greatest_hits",
        silence_dbfs=data.silence_dbfs,
        frame_size=data.frame_size,
    )


def run_check(cfg: Config, dataset: str, out: Path | None = None, threads: int = 1) -> int:
    """``sonic data check``: print (and with ``out`` write) what the dataset would give; 0 when usable, else 1."""
    from sonic.data import check

    spec = dataset_spec(cfg, dataset)
    data = cfg.data
    try:
        with config_source(cfg):
            report = check.scan(spec, extract_settings(cfg, spec.format), split=data.split,
                                val_fraction=data.val_fraction, eval_per_class=data.eval_audios_per_class,
                                seed=cfg.seed, threads=threads,
                                split_files=data.split_files(dataset) if data.split == "file" else None)
    except FileNotFoundError as err:  # the root (or a vggsound csv) is not there
        print(f"not usable: {err}")
        log.error("%s", err)
        return 1
    text = check.render(report)
    print(text, end="")
    if out is not None:
        check.write(report, out)
    if not report.usable:
        log.error("%s", check.failure(report))
        return 1
    return 0


def run_index(cfg: Config, dataset: str, videos_out: Path, rejects_out: Path) -> tuple[int, int]:
    with config_source(cfg):
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
    counts = manifest.fillna({"label": "(no label)"}).groupby(["label", "split"]).size().unstack(fill_value=0)
    log.info("manifest %s: %d clips (%s), %d rejects\n%s", manifest_out, len(manifest),
             manifest["split"].value_counts().to_dict(), len(rejects), counts.to_string())
    return manifest
