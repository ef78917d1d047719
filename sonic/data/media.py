"""Video and audio I/O (docs/paper-profile.md). Reading goes through PyAV (FFmpeg's libraries, bundled in
the ``av`` wheel): streams, codecs, display rotation and frame timing come from the demuxer and decoder, never from
parsing ffmpeg's text output. Writing (the synthetic world and the test fixtures) runs the ffmpeg binary with argument
lists built by ffmpeg-python, never shell strings; the binary is the one on PATH, or else the one shipped in the
``imageio-ffmpeg`` wheel.

Every problem with a file is a :class:`MediaError` whose message names the file and the problem; nothing else is
turned into one, so a bug or a full disk still fails loudly.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import ffmpeg
import numpy as np


class MediaError(RuntimeError):
    """A media file that cannot be read or written; the message names the file and the problem."""


@functools.cache
def ffmpeg_exe() -> str:
    """``$SONIC_FFMPEG``, else ffmpeg on PATH, else the binary of the imageio-ffmpeg wheel."""
    env = os.environ.get("SONIC_FFMPEG")
    if env:
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run(stream, path: str | Path, *, input: bytes | None = None) -> bytes:
    """Run an ffmpeg-python stream; raise :class:`MediaError` naming ``path`` with ffmpeg's last lines."""
    args = stream.compile(cmd=ffmpeg_exe())
    proc = subprocess.run(args, input=input, capture_output=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise MediaError(f"{path}: ffmpeg failed ({tail})")
    return proc.stdout


# ---- probing ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInfo:
    """The first real video stream (attached pictures such as cover art are not video)."""

    codec: str
    width: int  # as stored (coded orientation)
    height: int
    rotation: int  # display rotation, degrees counter-clockwise (0, 90, 180, 270)
    fps: float | None  # average frame rate
    variable_frame_rate: bool
    frames: int | None  # frame count from the container, when it says

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, rotation applied."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    layout: str


@dataclass(frozen=True)
class ProbeInfo:
    duration: float | None  # seconds (container duration)
    video: VideoInfo | None = None
    audio: AudioInfo | None = None
    attached_pictures: int = 0  # cover art and thumbnails (a video stream with the attached_pic disposition)
    streams: tuple[str, ...] = ()  # "<type>:<codec>" per stream, e.g. ("video:h264", "audio:aac")

    has_video = property(lambda self: self.video is not None)
    has_audio = property(lambda self: self.audio is not None)
    width = property(lambda self: self.video.display_size[0] if self.video else None)  # as displayed
    height = property(lambda self: self.video.display_size[1] if self.video else None)
    fps = property(lambda self: self.video.fps if self.video else None)
    sample_rate = property(lambda self: self.audio.sample_rate if self.audio else None)
    channels = property(lambda self: self.audio.channels if self.audio else None)


def _open(path: Path):
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as err:
        raise MediaError(f"{path}: not a readable media file ({_reason(err)})") from err


def _reason(err: av.FFmpegError) -> str:
    return getattr(err, "strerror", None) or str(err)


def _is_attached_picture(stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _variable_rate(stream) -> bool:
    """Whether the presentation times of the stream's frames are unevenly spaced (from the container's index
    when it has one, else from the demuxer's rates: average rate against the stream's base rate)."""
    times = sorted(e.timestamp for e in stream.index_entries) if len(stream.index_entries) > 2 else []
    if times:
        steps = np.diff(np.asarray(times, dtype=np.int64))
        steps = steps[steps > 0]
        if steps.size:
            return bool(steps.max() - steps.min() > max(1, 0.01 * np.median(steps)))
    avg, base = stream.average_rate, stream.base_rate
    return bool(avg and base and abs(float(avg) - float(base)) > 0.01 * float(base))


def _rotation(container, stream, path: Path) -> int:
    """Display rotation of the stream (degrees counter-clockwise), read from its first decoded frame."""
    try:
        for frame in container.decode(stream):
            rotation = int(round(frame.rotation or 0)) % 360
            break
        else:
            return 0
    except av.FFmpegError:
        return 0  # the decode pass reports the problem with its timing
    if rotation % 90:
        raise MediaError(f"{path}: display rotation of {rotation} degrees is not a multiple of 90")
    return rotation


def probe(path: str | Path) -> ProbeInfo:
    """Streams, codecs, duration, display rotation, frame-rate kind and audio layout of a media file."""
    path = Path(path)
    with _open(path) as container:
        video = audio = None
        pictures = 0
        streams = []
        for s in container.streams:
            codec = s.codec_context.name if s.codec_context else "unknown"
            if s.type == "video" and _is_attached_picture(s):
                pictures += 1
                streams.append(f"attached_pic:{codec}")
                continue
            streams.append(f"{s.type}:{codec}")
            if s.type == "video" and video is None:
                cc = s.codec_context
                rate = s.average_rate or s.guessed_rate
                video = VideoInfo(
                    codec=codec, width=cc.width, height=cc.height, rotation=_rotation(container, s, path),
                    fps=float(rate) if rate else None, variable_frame_rate=_variable_rate(s),
                    frames=s.frames or None,
                )
            elif s.type == "audio" and audio is None:
                cc = s.codec_context
                audio = AudioInfo(codec=codec, sample_rate=cc.sample_rate, channels=cc.channels,
                                  layout=cc.layout.name if cc.layout else f"{cc.channels} channels")
        if not streams:
            raise MediaError(f"{path}: not a readable media file (no streams)")
        duration = container.duration / av.time_base if container.duration else None
        if duration is None:
            durations = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
            duration = max(durations) if durations else None
    return ProbeInfo(duration=duration, video=video, audio=audio, attached_pictures=pictures, streams=tuple(streams))


# ---- reading ----------------------------------------------------------------------------------------------
def read_audio(
    path: str | Path, sample_rate: int, start: float | None = None, duration: float | None = None
) -> np.ndarray:
    """Decode the first audio stream as mono float32 at ``sample_rate`` (optionally a window of it).

    Channels are downmixed and the rate converted by libswresample (FFmpeg's own resampler, as ``ffmpeg -ac 1
    -ar <rate>`` does); :func:`probe` tells what the source had, so callers can record the conversion.
    """
    path = Path(path)
    chunks: list[np.ndarray] = []
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except av.FFmpegError as err:
            decoded = sum(map(len, chunks)) / sample_rate
            raise MediaError(f"{path}: truncated or corrupt: audio decoding failed after {decoded:.2f} s "
                             f"({_reason(err)})") from err
    wave = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    first = int(round((start or 0.0) * sample_rate))
    last = None if duration is None else first + int(round(duration * sample_rate))
    return np.ascontiguousarray(wave[first:last])


def _frame_array(frame, rotation: int, size: tuple[int, int] | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB as displayed: scaled to ``size`` = (width, height) of the displayed frame, then turned
    by the display rotation (counter-clockwise, as FFmpeg's display matrix defines it)."""
    if size is None:
        arr = frame.to_ndarray(format="rgb24")
    else:
        width, height = (size[1], size[0]) if rotation % 180 else size
        arr = frame.reformat(width=width, height=height, format="rgb24", interpolation="BICUBIC").to_ndarray()
    return np.ascontiguousarray(np.rot90(arr, k=rotation // 90)) if rotation else arr


def read_frames(
    path: str | Path, times: list[float], size: tuple[int, int] | None = None, info: ProbeInfo | None = None
) -> list[np.ndarray]:
    """RGB frames (H, W, 3) uint8 displayed at each time in ``times`` (seconds from the start of the file).

    The frame displayed at time t is the last one whose presentation time is at or before t (the first frame for
    a t before it), so constant and variable frame rates are handled alike. Frames are decoded in one pass and
    converted only when picked, so memory stays small for long high-resolution videos. The display rotation is
    applied: frames come out upright at their display size; ``size`` = (width, height) rescales.
    """
    path = Path(path)
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: no video stream" + (" (only an attached picture)" if info.attached_pictures else ""))
    if not times:
        return []
    wanted = sorted(set(times))
    picked: dict[float, np.ndarray] = {}
    rotation = info.video.rotation
    last_time, max_gap, error = None, 0.0, None
    with _open(path) as container:
        stream = next(s for s in container.streams.video if not _is_attached_picture(s))
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        k, shown = 0, None
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time) - origin
                while k < len(wanted) and wanted[k] < t:
                    picked[wanted[k]] = _frame_array(shown if shown is not None else frame, rotation, size)
                    k += 1
                if k == len(wanted):
                    break
                if last_time is not None:
                    max_gap = max(max_gap, t - last_time)
                shown, last_time = frame, t
        except av.FFmpegError as err:
            error = err
        if last_time is None:
            raise MediaError(f"{path}: no decodable video frames" + (f" ({_reason(error)})" if error else ""))
        # The last frame stays on screen until the end; a time far past it means the stream stopped early.
        reach = last_time + max(1.0, 2 * max_gap)
        for t in wanted[k:]:
            if t > reach:
                why = f": {_reason(error)}" if error else ""
                raise MediaError(f"{path}: truncated or corrupt: no video frame after t={last_time:.2f} s, a frame at "
                                 f"t={t:.2f} s is needed{why}")
            picked[t] = _frame_array(shown, rotation, size)
    return [picked[t].copy() for t in times]


# ---- writing ----------------------------------------------------------------------------------------------
def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    crf: int = 23,
    filters: str | None = None,
    variable_rate: bool = False,
) -> None:
    """Write an mp4 with H.264 (yuv420p) video and, when ``audio`` is given, an AAC audio stream.

    ``frames``: (T, H, W, 3) uint8 with even H and W; ``audio``: (N,) or (N, C) float in [-1, 1]. ``filters``: an
    ffmpeg video filter chain applied on the way (e.g. ``scale=1280:720,fps=30``); ``variable_rate``: keep each
    frame's own timestamp (``-fps_mode vfr``, for a chain that drops frames).
    """
    import soundfile as sf

    path = Path(path)
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise MediaError(f"{path}: frame size {w}x{h} must be even for H.264")
    path.parent.mkdir(parents=True, exist_ok=True)
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
    out_kwargs = {
        "vcodec": "libx264",
        "pix_fmt": "yuv420p",
        "crf": crf,
        "preset": "veryfast",
        "movflags": "+faststart",
        "flags:v": "+bitexact",  # reproducible bytes: no encoder version strings or timestamps
        "flags:a": "+bitexact",
        "fflags": "+bitexact",
        "x264-params": "threads=1",
    }
    if filters:
        out_kwargs["vf"] = filters
    if variable_rate:
        out_kwargs["fps_mode"] = "vfr"
    with tempfile.TemporaryDirectory() as tmp:
        if audio is not None:
            if not sample_rate:
                raise MediaError(f"{path}: audio given without a sample rate")
            wav = Path(tmp) / "audio.wav"
            sf.write(wav, np.clip(audio, -1, 1).astype(np.float32), sample_rate, subtype="PCM_16")
            stream = ffmpeg.output(video, ffmpeg.input(str(wav)), str(path), acodec="aac", **out_kwargs)
        else:
            stream = ffmpeg.output(video, str(path), **out_kwargs)
        run(stream.global_args("-nostdin", "-loglevel", "error", "-y"), path, input=frames.tobytes())
