"""Hand-made native layouts with exactly known contents (tiny frames, short clips) for the adapter tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from sonic.data.media import write_video

SR = 48000
FPS = 5


def clip(seconds: float, brightness: int = 128, freq: float = 440.0, amp: float = 0.3, sr: int = SR):
    frames = np.full((max(1, int(seconds * FPS)), 32, 32, 3), brightness, np.uint8)
    t = np.arange(int(seconds * sr)) / sr
    return frames, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def video(path: Path, seconds: float, audio: bool = True, amp: float = 0.3, brightness: int = 128) -> Path:
    frames, wave = clip(seconds, brightness=brightness, amp=amp)
    write_video(path, frames, FPS, wave if audio else None, SR if audio else None)
    return path


def greatest_hits(root: Path) -> Path:
    """vis-data/ with: a 25 s video (window 0-10 s all wood, 10-20 s wood+metal), a 12 s video whose only window
    has a None material, an id listed in test.txt without files, a zero-byte mp4, a stray file."""
    vis = root / "vis-data"
    vis.mkdir(parents=True)
    a, b = "2015-02-16-16-49-06", "2015-03-01-10-00-00-1"
    video(vis / f"{a}_denoised.mp4", 25)
    sf.write(vis / f"{a}_denoised.wav", clip(24.6, sr=96000)[1], 96000)  # audio shorter than video
    (vis / f"{a}_times.txt").write_text(
        "1.0 wood hit static\n3.5 wood scratch None\n7.2 wood hit static\n"
        "11.0 wood hit static\n14.0 metal hit static\n22.0 metal hit static\n"
    )
    video(vis / f"{b}_denoised.mp4", 12)
    (vis / f"{b}_times.txt").write_text("2.0 None hit static\n5.0 rock hit static\n8.0 rock hit static\n")
    empty = "2015-04-01-00-00-00"
    (vis / f"{empty}_denoised.mp4").write_bytes(b"")
    (vis / f"{empty}_times.txt").write_text("1.0 wood hit static\n")
    (vis / "notes.md").write_text("stray file\n")
    (vis / "train.txt").write_text(f"{a}\n{empty}\n")
    (vis / "test.txt").write_text(f"{b}\n2016-01-01-00-00-00\n")
    return vis


def landscape(root: Path) -> tuple[Path, Path]:
    """landscape/{train,test}/<class variants>/ + into_the_wild/ with metadata.xlsx."""
    land = root / "landscape"
    video(land / "train" / "fire_crakling" / "f1.mp4", 25)
    video(land / "train" / "Wind Noise" / "été 'windy' clip.mp4", 10.5, brightness=200)
    video(land / "train" / "wind_noise" / "short.mp4", 4)
    video(land / "train" / "wind_noise" / "silent.mp4", 12, amp=0.0)
    video(land / "test" / "raining" / "r1.mp4", 12, audio=False)
    video(land / "test" / "cats" / "c1.mp4", 12)
    (land / "test" / "raining" / "readme.txt").write_text("x")
    wild = root / "into_the_wild"
    video(wild / "AbCdEfGhIjK.mp4", 21)
    video(wild / "unlisted_id.mp4", 12)
    pd.DataFrame({"ID": ["AbCdEfGhIjK", "MissingVid1"], "Snow": [None, 1], "Forest": [1, None],
                  "Rain": [1, None], "Duration": [21, 30]}).to_excel(wild / "metadata.xlsx", index=False)
    return land, wild


def ravdess(root: Path) -> Path:
    base = root / "ravdess"
    actor = base / "Video_Song_Actor_01" / "Actor_01"
    video(actor / "01-02-03-02-01-01-01.mp4", 2.0)  # happy, strong
    video(actor / "01-02-04-01-02-01-01.mp4", 2.0)  # sad
    video(actor / "02-02-03-02-01-01-01.mp4", 2.0, audio=False)  # video only
    video(actor / "01-01-03-01-01-01-01.mp4", 2.0)  # speech
    video(actor / "01-02-08-01-01-01-01.mp4", 2.0)  # surprised: not a song emotion
    video(actor / "01-02-05-01-01-01-01.mp4", 0.4)  # too short
    video(actor / "not a ravdess name.mp4", 2.0)
    return base
