"""Real-format media, made with ffmpeg inside the tests: display rotation, variable frame rate, cover art,
multichannel low-rate audio, and errors that are not about the media (issue: real media, acceptance 1)."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from sonic.data import extract, media
from sonic.data.extract import ExtractionError, ExtractSettings, extract_video, extract_videos
from sonic.data.tables import Video

W, H = 64, 48  # stored (coded) size of the landscape test videos


def ffmpeg(*args: str | Path, stdin: bytes | None = None) -> None:
    cmd = [media.ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    subprocess.run(cmd, input=stdin, check=True, capture_output=True)


def tone(path: Path, seconds: float, sample_rate: int = 48000, channels: int = 1) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.repeat(wave[:, None], channels, axis=1).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def frames_by_index(n: int) -> np.ndarray:
    """(n, H, W, 3) frames whose index can be read back from their grey level (codec-proof steps of 2)."""
    levels = 20 + 2 * np.arange(n)
    frames = np.broadcast_to(levels[:, None, None, None], (n, H, W, 3)).astype(np.uint8).copy()
    frames[:, : H // 4, : W // 4] = 255  # a bright top-left corner: orientation is visible
    return frames


def encode(path: Path, frames: np.ndarray, fps: float, *extra: str, audio: Path | None = None,
           vf: str | None = None) -> Path:
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{frames.shape[2]}x{frames.shape[1]}", "-r", str(fps),
           "-i", "pipe:"]
    audio_in = ["-i", str(audio)] if audio else []
    filters = ["-vf", vf] if vf else []
    codec = ["-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p"] + (["-c:a", "aac"] if audio else [])
    ffmpeg(*raw, *audio_in, *filters, *codec, *extra, path, stdin=frames.tobytes())
    return path


def level(frame: np.ndarray) -> int:
    return int(round((float(np.median(frame[..., 1])) - 20) / 2))


def video(path: Path, dataset: str = "landscape") -> Video:
    return Video(dataset, path.stem, str(path), None, "wind noise", None, {})


def test_rotated_video_gives_an_upright_portrait_frame(tmp_path):
    frames = frames_by_index(30)
    src = encode(tmp_path / "src.mp4", frames, 10, audio=tone(tmp_path / "a.wav", 3.0))
    rotated = tmp_path / "phone.mp4"
    ffmpeg("-display_rotation", "90", "-i", src, "-c", "copy", rotated)  # a 90° display matrix, as phones write

    info = media.probe(rotated)
    assert info.video.rotation == 90 and (info.width, info.height) == (H, W)  # displayed portrait
    upright = media.read_frames(rotated, [1.25])[0]
    plain = media.read_frames(src, [1.25])[0]
    assert upright.shape == (W, H, 3) and plain.shape == (H, W, 3)
    assert np.abs(upright.astype(int) - np.rot90(plain).astype(int)).max() <= 2  # turned 90° counter-clockwise
    assert level(upright) == 12
    # ffmpeg's own player-side rotation (autorotate) shows the same picture
    ffmpeg("-i", rotated, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", tmp_path / "cli.raw")
    cli = np.fromfile(tmp_path / "cli.raw", np.uint8).reshape(W, H, 3)
    assert np.abs(media.read_frames(rotated, [0.0])[0].astype(int) - cli.astype(int)).max() <= 2

    rows, rejects = extract_video(video(rotated), ExtractSettings(segment_seconds=3.0), tmp_path / "out")
    assert not rejects and len(rows) == 1
    with Image.open(rows[0]["frame"]) as im:
        assert im.size == (H, W)  # (width, height): portrait
    assert json.loads(rows[0]["meta"])["source_video"]["rotation"] == 90


def test_variable_frame_rate_frame_is_the_one_displayed_and_the_video_is_kept(tmp_path):
    frames = frames_by_index(100)
    # frames 0-49 every 0.1 s, then 50-99 every 0.5 s: 0.0 ... 4.9, 5.0, 5.5, ... 29.5
    vfr = encode(tmp_path / "youtube.mp4", frames, 10, "-fps_mode", "vfr", audio=tone(tmp_path / "a.wav", 30.0),
                 vf="setpts='if(lt(N,50),N*0.1,5+(N-50)*0.5)/TB'")
    info = media.probe(vfr)
    assert info.video.variable_frame_rate and not media.probe(encode(
        tmp_path / "cfr.mp4", frames[:20], 10)).video.variable_frame_rate

    def shown(t: float) -> int:  # the last frame whose presentation time is <= t
        return int(t * 10 + 1e-9) if t < 5 else 50 + int((t - 5) / 0.5 + 1e-9)

    times = [0.0, 0.05, 4.95, 5.0, 5.2, 14.86, 25.0, 29.9]
    got = [level(f) for f in media.read_frames(vfr, times)]
    assert got == [shown(t) for t in times]
    # The average rate (100 frames / 30 s) would have picked frame floor(14.86 * 3.33) = 49, or failed.
    rows, rejects = extract_video(video(vfr), ExtractSettings(), tmp_path / "out")
    assert not rejects and [r["start"] for r in rows] == [0.0, 10.0, 20.0]
    assert [level(np.asarray(Image.open(r["frame"]))) for r in rows] == [shown(5.0), shown(15.0), shown(25.0)]
    assert json.loads(rows[0]["meta"])["source_video"]["variable_frame_rate"] is True


def test_audio_only_mp4_with_cover_art_is_rejected_as_having_no_video(tmp_path):
    m4a = tmp_path / "song.m4a"
    ffmpeg("-i", tone(tmp_path / "a.wav", 4.0), "-c:a", "aac", m4a)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "cover.png")
    cover = tmp_path / "song.mp4"
    ffmpeg("-i", m4a, "-i", tmp_path / "cover.png", "-map", "0", "-map", "1", "-c:a", "copy", "-c:v", "mjpeg",
           "-disposition:v:0", "attached_pic", cover)
    info = media.probe(cover)
    assert not info.has_video and info.has_audio and info.attached_pictures == 1
    assert "attached_pic:mjpeg" in info.streams
    rows, rejects = extract_video(video(cover), ExtractSettings(segment_seconds=2.0), tmp_path / "out")
    assert rows == [] and len(rejects) == 1
    assert rejects[0].reason.startswith("no video stream") and "attached picture" in rejects[0].reason
    with pytest.raises(media.MediaError, match="no video stream"):
        media.read_frames(cover, [1.0])


def test_multichannel_low_rate_audio_is_kept_and_its_conversion_recorded(tmp_path, caplog):
    surround = tone(tmp_path / "surround.wav", 4.0, sample_rate=8000, channels=6)
    src = encode(tmp_path / "film.mp4", frames_by_index(40), 10, "-ac", "6", "-ar", "8000", audio=surround)
    info = media.probe(src)
    assert (info.audio.channels, info.audio.sample_rate, info.audio.layout) == (6, 8000, "5.1")

    with caplog.at_level(logging.WARNING, logger=extract.__name__):
        rows, rejects = extract_video(video(src), ExtractSettings(segment_seconds=4.0), tmp_path / "out")
    assert not rejects and len(rows) == 1
    meta = json.loads(rows[0]["meta"])
    assert meta["source_audio"] == {"codec": "aac", "channels": 6, "layout": "5.1", "sample_rate": 8000}
    assert meta["audio_conversion"] == "5.1 (6 ch) -> mono, 8000 Hz -> 48000 Hz"
    assert any("upsampled" in r.message and "8000 Hz" in r.message for r in caplog.records)
    wave, rate = sf.read(rows[0]["audio"])
    assert rate == 48000 and wave.ndim == 1 and abs(len(wave) / rate - 4.0) < 0.05
    # the tone survives the downmix (440 Hz dominates the spectrum)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * rate / len(wave) - 440) < 5


def test_an_error_that_is_not_about_the_media_fails_the_job(tmp_path, monkeypatch):
    src = encode(tmp_path / "ok.mp4", frames_by_index(30), 10, audio=tone(tmp_path / "a.wav", 3.0))
    rows, rejects = extract_videos([video(src)], ExtractSettings(segment_seconds=3.0), tmp_path / "out",
                                   progress=False)
    assert len(rows) == 1 and not rejects

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(extract.sf, "write", disk_full)
    with pytest.raises(ExtractionError, match=r"ok\.mp4.*No space left on device"):
        extract_videos([video(src)], ExtractSettings(segment_seconds=3.0), tmp_path / "out2", progress=False)


def test_corrupt_and_missing_files_are_media_errors_naming_the_file(tmp_path):
    bad = tmp_path / "not a video.mp4"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(media.MediaError, match="not a video.mp4: not a readable media file"):
        media.probe(bad)
    with pytest.raises(media.MediaError, match="no such file"):
        media.probe(tmp_path / "absent.mp4")
    src = encode(tmp_path / "cut.mp4", frames_by_index(100), 10, "-movflags", "+faststart")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 3 // 4])  # index intact (faststart), the last quarter of the media cut
    assert level(media.read_frames(src, [2.0])[0]) == 20  # what is there still decodes
    with pytest.raises(media.MediaError, match=r"cut.mp4: truncated or corrupt: no video frame after t=\S+ s, "
                                               r"a frame at t=9.90 s is needed"):
        media.read_frames(src, [2.0, 9.9])
