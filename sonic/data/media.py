"""Video and audio I/O through ffmpeg (SPEC §2): argument lists built with ffmpeg-python, never shell strings.

The ffmpeg binary is the one on PATH, or else the one shipped in the ``imageio-ffmpeg`` wheel. Every error is a
:class:`MediaError` whose message names the file and the problem.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
class ProbeInfo:
    duration: float | None  # seconds (container duration)
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: .*?(\d+) Hz(?:, (mono|stereo|(\d+) channels|[^,]+))?")


def probe(path: str | Path) -> ProbeInfo:
    """Container duration and streams, parsed from ``ffmpeg -i`` (the wheel ships no ffprobe)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True)
    text = proc.stderr.decode(errors="replace")
    if "Invalid data found" in text or "moov atom not found" in text or "Stream #" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise MediaError(f"{path}: not a readable media file ({last})")
    m = _DURATION.search(text)
    duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    video = _VIDEO.search(text)
    audio = _AUDIO.search(text)
    fps = None
    if video:
        line = text[video.start() : text.find("\n", video.start())]
        f = _FPS.search(line)
        fps = float(f[1]) if f else None
    channels = None
    if audio:
        layout = audio[2] or ""
        channels = 1 if layout == "mono" else 2 if layout == "stereo" else int(audio[3]) if audio[3] else None
    return ProbeInfo(
        duration=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        width=int(video[1]) if video else None,
        height=int(video[2]) if video else None,
        fps=fps,
        sample_rate=int(audio[1]) if audio else None,
        channels=channels,
    )


# ---- reading ----------------------------------------------------------------------------------------------
def read_audio(
    path: str | Path, sample_rate: int, start: float | None = None, duration: float | None = None
) -> np.ndarray:
    """Decode the audio stream as mono float32 at ``sample_rate`` (optionally a window), one ffmpeg call."""
    kwargs = {}
    if start is not None:
        kwargs["ss"] = f"{start:.6f}"
    if duration is not None:
        kwargs["t"] = f"{duration:.6f}"
    stream = ffmpeg.input(str(path), **kwargs).output(
        "pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate, map="0:a:0"
    )
    raw = run(stream.global_args("-nostdin", "-loglevel", "error"), path)
    return np.frombuffer(raw, dtype=np.float32).copy()


def read_frames(
    path: str | Path, times: list[float], size: tuple[int, int] | None = None, info: ProbeInfo | None = None
) -> list[np.ndarray]:
    """RGB frames (H, W, 3) uint8 shown at each time in ``times`` (seconds), in one decode pass.

    ffmpeg's ``select`` filter keeps only the wanted frame numbers (floor(t * fps)), so memory stays small even
    for long high-resolution videos. ``size`` = (width, height) rescales.
    """
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: no video stream")
    if not times:
        return []
    width, height = size or (info.width, info.height)
    fps = info.fps or 25.0
    wanted = sorted({max(0, int(t * fps)) for t in times})
    stream = ffmpeg.input(str(path)).video.filter("select", "+".join(f"eq(n,{n})" for n in wanted))
    if size:
        stream = stream.filter("scale", width, height)
    stream = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
    raw = run(stream.global_args("-nostdin", "-loglevel", "error"), path)
    frame_bytes = width * height * 3
    n = len(raw) // frame_bytes
    if n == 0:
        raise MediaError(f"{path}: no decodable video frames")
    if n < len(wanted):
        raise MediaError(f"{path}: truncated or corrupt: video frame {wanted[n]} (t={wanted[n] / fps:.2f} s) "
                         f"cannot be decoded")
    frames = np.frombuffer(raw[: n * frame_bytes], dtype=np.uint8).reshape(n, height, width, 3)
    by_number = dict(zip(wanted, frames, strict=True))
    return [by_number[max(0, int(t * fps))].copy() for t in times]


# ---- writing ----------------------------------------------------------------------------------------------
def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    crf: int = 23,
) -> None:
    """Write an mp4 with H.264 (yuv420p) video and, when ``audio`` is given, an AAC audio stream.

    ``frames``: (T, H, W, 3) uint8 with even H and W; ``audio``: (N,) or (N, C) float in [-1, 1].
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
