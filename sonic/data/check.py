"""``sonic data check``: what a dataset would give, found without extracting anything (docs/own_videos.md).

The dataset's adapter indexes it (:mod:`sonic.data.datasets`), every video is probed (streams and duration, no
decoding), the clips extraction would cut are planned by the extraction's own rules
(:func:`sonic.data.extract.plan_segments`) and split by ``data.split`` as the manifest will be. The report gives,
per label, the videos, their duration and their clips; every file that would be skipped, with its reason; the
split's sizes. Silence and frames that fail to decode mid-file are only found when extracting (they need decoding).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sonic.data import media
from sonic.data.datasets import DatasetSpec, index_dataset
from sonic.data.extract import ExtractSettings, clip_id, plan_segments
from sonic.data.manifest import has_labels, split_clips
from sonic.data.tables import CLIP_COLUMNS, Reject, Video

NO_LABEL = "(no label)"


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | unreadable | no audio | no video | too short | not used
    source: str
    reason: str


@dataclass
class CheckReport:
    spec: DatasetSpec
    settings: ExtractSettings
    indexed: int  # videos the adapter found (before probing)
    videos: pd.DataFrame  # per video that gives clips: video_id, label, duration, clips
    clips: pd.DataFrame  # the planned clips (CLIP_COLUMNS), then split / eval
    problems: list[Problem]
    split: str
    split_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Something to train on: at least one clip would be made, and the split of the clips works."""
        return len(self.clips) > 0 and self.split_error is None


def problem_kind(reject: Reject) -> str:
    """The heading a skipped file is counted under (its full reason is printed beside it)."""
    reason = reject.reason
    if reject.stage == "segment":
        return "too short" if reason.startswith("too short") else "no clip"
    if reject.stage == "index":
        return "missing" if ": no file " in reason or " is missing" in reason else "not used"
    if "no audio stream" in reason:
        return "no audio"
    if "no video stream" in reason:
        return "no video"
    return "unreadable"


def _probe(video: Video) -> tuple[float | None, Reject | None]:
    """(duration, None) of a usable video, else (None, the reject extraction would record)."""
    def fail(reason: str) -> tuple[None, Reject]:
        return None, Reject(video.dataset, video.video, "probe", reason)

    try:
        info = media.probe(video.video)
        audio = info if video.audio is None else media.probe(video.audio)
    except media.MediaError as err:
        return fail(str(err).removeprefix(f"{video.video}: "))
    if not info.has_video:
        return fail("no video stream" + (" (only an attached picture)" if info.attached_pictures else ""))
    if not audio.has_audio:
        return fail("no audio stream" if video.audio is None else f"{video.audio}: no audio stream")
    durations = [d for d in (info.duration, audio.duration) if d is not None]
    if not durations:
        return fail("unreadable: the container states no duration")
    return min(durations), None


def scan(spec: DatasetSpec, settings: ExtractSettings, *, split: str, val_fraction: float, eval_per_class: int,
         seed: int, split_files: dict | None = None, threads: int = 1) -> CheckReport:
    """Index ``spec``, probe its videos (``threads`` at a time) and plan and split its clips, extracting nothing."""
    videos, rejects = index_dataset(spec)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        probed = list(pool.map(_probe, videos))
    per_video, rows = [], []
    for video, (duration, reject) in zip(videos, probed, strict=True):
        if reject is not None:
            rejects.append(reject)
            continue
        segments, segment_rejects = plan_segments(video, duration, settings)
        rejects += segment_rejects
        if segments:
            per_video.append({"video_id": video.video_id, "label": video.label, "duration": duration,
                              "clips": len(segments)})
        for seg in segments:
            rows.append({"clip_id": clip_id(video.video_id, seg.start, settings), "dataset": spec.name,
                         "video_id": video.video_id, "source": video.video, "start": seg.start, "end": seg.end,
                         "label": seg.label, "frame": "", "audio": "", "native_split": video.native_split,
                         "meta": ""})
    clips = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    report = CheckReport(spec, settings, len(videos),
                         pd.DataFrame(per_video, columns=["video_id", "label", "duration", "clips"]), clips,
                         [Problem(problem_kind(r), r.source, r.reason) for r in rejects], split)
    if len(clips):
        try:
            report.clips, split_rejects = split_clips(clips, split, val_fraction, eval_per_class, seed, split_files)
            report.problems += [Problem("not in the split lists", r.source, r.reason)
                                for r in split_rejects.itertuples()]
        except (ValueError, OSError) as err:
            report.split_error = str(err)
        report.notes += _warnings(report.clips, has_labels(clips))
    return report


def _warnings(clips: pd.DataFrame, labelled: bool) -> list[str]:
    """What later stages will refuse, found now."""
    notes = []
    if "split" not in clips:
        return notes
    train, val = clips[clips["split"] == "train"], clips[clips["split"] == "val"]
    if len(val) < 2:
        notes.append(f"only {len(val)} validation clip(s): the evaluation needs at least 2 (raise data.val_fraction "
                     "or add videos)")
    groups = train["label"] if labelled else train["video_id"]
    sizes = groups.value_counts()
    if len(sizes) < 2 or sizes.max() < 2:
        what = "labels" if labelled else "videos (a dataset without labels pairs the clips of one video)"
        notes.append(f"stage 1 needs training clips of at least two {what}, one of them with two clips or more")
    if labelled and clips["label"].nunique() < 2:
        notes.append("one label only: AIC and SAC need two")
    return notes


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def render(report: CheckReport, max_listed: int = 20) -> str:
    """The report as text (what ``sonic data check`` prints)."""
    spec, s = report.spec, report.settings
    where = f"root {spec.root}" + (f", csv {spec.csv}" if spec.csv else "")
    if s.whole_file:
        cut = f"one clip per file, {s.min_seconds:g} s at least" + (f", its first {s.max_seconds:g} s"
                                                                    if s.max_seconds else "")
    else:
        cut = f"windows of {s.segment_seconds:g} s"
    lines = [f"dataset {spec.name!r}: format {spec.format}, {where}",
             f"{report.indexed} videos found and probed, nothing extracted; clips: {cut}", ""]
    table = report.videos.assign(label=report.videos["label"].fillna(NO_LABEL))
    per_label = table.groupby("label", sort=True).agg(videos=("video_id", "size"), duration=("duration", "sum"),
                                                      clips=("clips", "sum"))
    width = max([len("label"), len("total"), *map(len, per_label.index)])
    lines.append(f"{'label':<{width}}  {'videos':>7}  {'duration':>12}  {'clips':>7}")
    for row in per_label.itertuples():
        lines.append(f"{row.Index:<{width}}  {row.videos:>7}  {_duration(row.duration):>12}  {row.clips:>7}")
    lines.append(f"{'total':<{width}}  {len(table):>7}  {_duration(table['duration'].sum()):>12}  "
                 f"{int(table['clips'].sum()):>7}")
    if report.problems:
        counts = Counter(p.kind for p in report.problems)
        lines += ["", f"not usable: {len(report.problems)} ("
                  + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")"]
        for p in sorted(report.problems, key=lambda p: (p.kind, p.source))[:max_listed]:
            lines.append(f"  {p.kind:<10}  {p.source}: {p.reason}")
        if len(report.problems) > max_listed:
            lines.append(f"  ... and {len(report.problems) - max_listed} more")
    lines.append("")
    if report.split_error:
        lines.append(f"split ({report.split}): fails: {report.split_error}")
    elif "split" in report.clips:
        sizes = []
        for side in ("train", "val", "unused"):
            part = report.clips[report.clips["split"] == side]
            if len(part) or side != "unused":
                sizes.append(f"{side} {len(part)} clips from {part['video_id'].nunique()} videos")
        evaluated = int(report.clips["eval"].sum())
        lines.append(f"split ({report.split}): " + ", ".join(sizes) + f"; {evaluated} evaluation clips")
    lines += [f"warning: {n}" for n in report.notes]
    lines.append("not checked here (found when extracting): silent windows, frames or audio that fail to decode "
                 "mid-file")
    if report.usable:
        labels = "no labels" if not has_labels(report.clips) else f"{report.clips['label'].nunique()} labels"
        lines.append(f"OK: {len(report.clips)} clips from {len(report.videos)} videos ({labels}) would be extracted")
    else:
        lines.append(failure(report))
    return "\n".join(lines) + "\n"


def failure(report: CheckReport) -> str:
    """The message of an unusable dataset, naming its root."""
    if report.split_error:
        return f"not usable: {report.spec.root}: the split fails ({report.split_error})"
    return (f"not usable: no usable video under {report.spec.root} ({report.indexed} videos found, none would give "
            "a clip; the reasons are above)")


def write(report: CheckReport, out: str | Path) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(render(report))
