"""Per-video extraction: segments, one middle frame and the segment's audio per clip (paper §4, supp. §1.2).

Each source video is probed once (streams, rotation, frame timing, audio layout), decoded once for its frames
(the frame displayed at each window's middle time, upright) and once for its audio (mono, at the audio encoder's
rate); clips are cut from those arrays. What the source had and what it was converted to is recorded in every
clip's ``meta``. A problem with one file or one segment (a :class:`~sonic.data.media.MediaError`, silence, too
short) becomes a reject row with its reason and the other videos go on; any other error fails the job with a
message naming the file.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm.auto import tqdm

from sonic.data import media
from sonic.data.datasets import parse_times
from sonic.data.tables import Reject, Video, slug

log = logging.getLogger(__name__)


class ExtractionError(RuntimeError):
    """An error during extraction that is not about the input media (it is not recorded as a reject)."""


@dataclass(frozen=True)
class ExtractSettings:
    sample_rate: int = 48000  # the audio encoder's rate
    segment_seconds: float = 10.0
    whole_file: bool = False  # RAVDESS, VGGSound: one clip per file
    min_seconds: float = 1.0  # whole-file clips shorter than this are rejected
    max_seconds: float | None = None  # whole-file clips end here at the latest (VGGSound: its 10 s)
    min_hits: int = 2  # Greatest Hits: hits a window needs, all of one material
    consecutive_material: bool = False  # Greatest Hits filter on/off
    silence_dbfs: float = -60.0  # RMS below this is "silent"
    frame_size: int | None = None  # square resize of frames; None keeps the native size


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str | None
    extra: dict


def plan_segments(video: Video, duration: float, settings: ExtractSettings) -> tuple[list[Segment], list[Reject]]:
    """Split ``duration`` seconds into clips; apply the Greatest Hits single-material filter."""
    rejects: list[Reject] = []

    def reject(reason: str, start: float | None = None, end: float | None = None) -> None:
        where = video.video if start is None else f"{video.video}@{start:.1f}-{end:.1f}s"
        rejects.append(Reject(video.dataset, where, "segment", reason))

    if settings.whole_file:
        if duration < settings.min_seconds:
            reject(f"too short: {duration:.2f} s < {settings.min_seconds:g} s")
            return [], rejects
        end = duration if settings.max_seconds is None else min(duration, settings.max_seconds)
        return [Segment(0.0, end, video.label, {})], rejects
    seg = settings.segment_seconds
    count = int(math.floor(duration / seg + 1e-6))
    if count == 0:
        reject(f"too short: {duration:.2f} s < one {seg:g} s segment")
        return [], rejects
    windows = [(k * seg, (k + 1) * seg) for k in range(count)]
    if not settings.consecutive_material:
        return [Segment(s, e, video.label, {}) for s, e in windows], rejects

    hits, problems = parse_times(video.meta["times"])
    for p in problems:
        rejects.append(Reject(video.dataset, video.meta["times"], "index", p))
    segments = []
    for s, e in windows:
        inside = [m for t, m in hits if s <= t < e]
        materials = sorted({m for m in inside if m is not None})
        if len(inside) < settings.min_hits:
            reject(f"{len(inside)} hit(s) in the window, need {settings.min_hits}", s, e)
        elif any(m is None for m in inside):
            reject("a hit with material None in the window", s, e)
        elif len(materials) > 1:
            reject(f"mixed materials in the window: {', '.join(materials)}", s, e)
        else:
            segments.append(Segment(s, e, materials[0], {"hits": len(inside)}))
    return segments, rejects


def clip_id(video_id: str, start: float, settings: ExtractSettings) -> str:
    """The id of a video's clip starting at ``start`` s: file-system safe, unique across the dataset's videos."""
    base = slug(video_id.replace("/", "__"))
    return base if settings.whole_file else f"{base}_{int(start):05d}"


def level_dbfs(wave: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for an empty or all-zero wave); what ``data.silence_dbfs``
    is compared with."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def source_media(info: media.ProbeInfo, audio_info: media.ProbeInfo, sample_rate: int) -> dict:
    """What a clip's source had and what extraction made of it, for the clip's ``meta``."""
    a, v = audio_info.audio, info.video
    changes = [f"{a.layout} ({a.channels} ch) -> mono" if a.channels != 1 else None,
               f"{a.sample_rate} Hz -> {sample_rate} Hz" if a.sample_rate != sample_rate else None]
    return {
        "source_audio": {"codec": a.codec, "channels": a.channels, "layout": a.layout, "sample_rate": a.sample_rate},
        "audio_conversion": ", ".join(c for c in changes if c) or "none",
        "source_video": {"codec": v.codec, "size": "{}x{}".format(*v.display_size), "rotation": v.rotation,
                         "fps": round(v.fps, 3) if v.fps else None, "variable_frame_rate": v.variable_frame_rate},
    }


def extract_video(video: Video, settings: ExtractSettings, out_dir: Path) -> tuple[list[dict], list[Reject]]:
    """All clips of one video -> (clip rows, rejects). Writes ``frames/<clip>.png`` and ``audio/<clip>.wav``."""
    def fail(reason: str, stage: str = "probe") -> tuple[list[dict], list[Reject]]:
        return [], [Reject(video.dataset, video.video, stage, reason)]

    try:
        info = media.probe(video.video)
    except media.MediaError as err:
        return fail(str(err).removeprefix(f"{video.video}: "))
    if not info.has_video:
        pictures = f" (audio with {info.attached_pictures} attached picture(s), e.g. cover art)" \
            if info.attached_pictures else ""
        return fail(f"no video stream{pictures}")
    audio_path = video.audio or video.video
    if video.audio is None and not info.has_audio:
        return fail("no audio stream")
    try:
        audio_info = info if video.audio is None else media.probe(audio_path)
        if not audio_info.has_audio:
            return fail(f"{audio_path}: no audio stream")
        wave = media.read_audio(audio_path, settings.sample_rate)
    except media.MediaError as err:
        return fail(str(err), "extract")
    conversion = source_media(info, audio_info, settings.sample_rate)
    if audio_info.sample_rate < settings.sample_rate:
        log.warning("%s: audio at %d Hz is upsampled to the encoder's %d Hz (no content above %d Hz)", audio_path,
                    audio_info.sample_rate, settings.sample_rate, audio_info.sample_rate // 2)
    decoded = len(wave) / settings.sample_rate
    stated = audio_info.duration
    if stated and decoded < stated - max(0.5, 0.05 * stated):
        # A file cut short but with its index intact probes fine and decodes partially without an error code.
        return fail(f"truncated or corrupt: audio decodes to {decoded:.2f} s of the {stated:.2f} s stated", "extract")
    durations = [d for d in (info.duration, decoded) if d is not None]
    duration = min(durations)  # audio and video lengths can differ: use the shorter
    segments, rejects = plan_segments(video, duration, settings)

    kept: list[tuple[Segment, np.ndarray]] = []
    for seg in segments:
        clip = wave[int(round(seg.start * settings.sample_rate)) : int(round(seg.end * settings.sample_rate))]
        level = level_dbfs(clip)
        if level < settings.silence_dbfs:
            rejects.append(Reject(video.dataset, f"{video.video}@{seg.start:.1f}-{seg.end:.1f}s", "extract",
                                  f"silent audio ({level:.1f} dBFS < {settings.silence_dbfs:g} dBFS)"))
        else:
            kept.append((seg, clip))
    if not kept:
        return [], rejects

    size = (settings.frame_size, settings.frame_size) if settings.frame_size else None
    try:
        frames = media.read_frames(video.video, [(s.start + s.end) / 2 for s, _ in kept], size=size, info=info)
    except media.MediaError as err:
        return [], rejects + [Reject(video.dataset, video.video, "extract", str(err))]

    rows = []
    for (seg, clip), image in zip(kept, frames, strict=True):
        name = clip_id(video.video_id, seg.start, settings)
        frame_path = out_dir / "frames" / f"{name}.png"
        audio_out = out_dir / "audio" / f"{name}.wav"
        frame_path.parent.mkdir(parents=True, exist_ok=True)
        audio_out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(frame_path, optimize=False)
        sf.write(audio_out, clip, settings.sample_rate, subtype="PCM_16")
        rows.append({
            "clip_id": name,
            "dataset": video.dataset,
            "video_id": video.video_id,
            "source": video.video,
            "start": round(seg.start, 3),
            "end": round(seg.end, 3),
            "label": seg.label,
            "frame": str(frame_path),
            "audio": str(audio_out),
            "native_split": video.native_split,
            "meta": json.dumps(video.meta | seg.extra | conversion, sort_keys=True),
        })
    return rows, rejects


def extract_videos(
    videos: Iterable[Video], settings: ExtractSettings, out_dir: Path, progress: bool = True
) -> tuple[list[dict], list[Reject]]:
    """Extract many videos one after the other. A media problem of one video is a reject (inside
    :func:`extract_video`); anything else (a bug, a full disk, a missing library) stops the job, naming the file."""
    videos = list(videos)
    rows, rejects = [], []
    for video in tqdm(videos, desc=f"extract {out_dir.name}", unit="video", disable=not progress):
        try:
            r, j = extract_video(video, settings, out_dir)
        except Exception as err:
            raise ExtractionError(f"{video.video}: extraction failed, not because of the file's media "
                                  f"({type(err).__name__}: {err})") from err
        rows += r
        rejects += j
    return rows, rejects
