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


def own_folder(root: Path) -> Path:
    """A ``folder`` dataset: label folders with spaces and non-ASCII letters, a nested sub-folder, an .mkv, and a
    video too short, one without audio, one unreadable, a text file, a video directly under the root, a hidden file,
    a hidden folder and a link back to the root."""
    base = root / "my videos"
    video(base / "Wind Noise" / "a.mp4", 21)  # two 10 s windows
    video(base / "Wind Noise" / "mute.mp4", 12, audio=False)
    video(base / "Wind Noise" / "short.mp4", 3)
    (base / "Wind Noise" / "broken.mp4").write_bytes(b"\x00\x01 not a video" * 50)
    (base / "Wind Noise" / "notes.txt").write_text("recorded on the ridge\n")
    video(base / "Été à la plage" / "day 1" / "deeper" / "b.mp4", 12, brightness=200)
    video(base / "Été à la plage" / "c.mkv", 11, brightness=60)
    video(base / "Été à la plage" / "d.mp4", 10.5, brightness=90)
    video(base / "loose.mp4", 12)  # beside label folders: not in one
    (base / "Wind Noise" / "._a.mp4").write_bytes(b"\x00" * 64)  # macOS AppleDouble file
    (base / ".thumbnails").mkdir()
    (base / ".thumbnails" / "a.jpg").write_bytes(b"\xff\xd8")
    (base / "Wind Noise" / "back to the root").symlink_to(base)  # a link loop: read once
    return base


def own_unlabelled(root: Path) -> Path:
    """A ``folder`` dataset without labels: three videos directly under the root (one of them .mov)."""
    base = root / "unlabelled"
    video(base / "x.mp4", 21)
    video(base / "y.mov", 21, brightness=60)
    video(base / "z.mp4", 12, brightness=200)
    return base


VGGSOUND_CSV = (
    '-abcDEF_123,30,"dog barking, growling",train\n'
    'dog1,10,"dog barking, growling",test\n'
    "cat1,0,cat meowing,train\n"
    "cat2,0,cat meowing,test\n"
    "short,5,cat meowing,train\n"
    "noau,5,cat meowing,test\n"
    "gone,20,cat meowing,train\n"
)


def own_vggsound(root: Path) -> tuple[Path, Path]:
    """VGGSound-style clips and their vggsound.csv (:data:`VGGSOUND_CSV`): a label with a comma (quoted), an id that
    begins with ``-``, a row whose file is missing (gone), a file no row lists (stray), a clip without audio (noau)
    and a 3 s clip (short)."""
    base = root / "vggsound"
    clips = base / "video"
    video(clips / "-abcDEF_123_000030.mp4", 10)
    video(clips / "dog1_000010.mp4", 10, brightness=200)
    video(clips / "cat1_000000.mp4", 10, brightness=60)
    video(clips / "cat2_000000.mp4", 10, brightness=90)
    video(clips / "short_000005.mp4", 3)
    video(clips / "noau_000005.mp4", 10, audio=False)
    video(clips / "stray_000001.mp4", 10)
    table = base / "vggsound.csv"
    table.write_text(VGGSOUND_CSV)
    return clips, table


OWN_LABELS = {  # the smoke world's Landscape classes, as a user might name their folders and VGGSound its classes
    "fire crackling": ("Feu de camp — crépitement", "fire crackling, popping"),
    "underwater bubbling": ("Under water", "underwater bubbling"),
    "wind noise": ("wind, noise", "wind noise"),
}


def own_datasets_from_world(raw: Path, out: Path) -> dict[str, dict]:
    """The synthetic world under ``raw`` (``results/raw`` of a smoke run) re-laid as datasets of your own, returned
    as ``data.datasets`` entries: ``own_folder`` (Landscape's videos in label folders named with spaces, punctuation
    and non-ASCII letters, one class in a nested sub-folder), ``own_unlabelled`` (Greatest Hits' and Into the Wild's
    videos directly under the root: two 10 s windows each) and ``own_vggsound`` (Landscape's ``<id>_<start>.mp4``
    with a vggsound.csv, plus a row without a file and a 4-5 s RAVDESS file no row lists)."""
    import shutil

    from sonic.demo.synth import LANDSCAPE_FOLDER_VARIANTS

    folder, unlabelled, vgg = out / "own_folder", out / "own_unlabelled", out / "own_vggsound"
    rows = []
    for split in ("train", "test"):
        for cls_folder in sorted((raw / "landscape" / "landscape" / split).iterdir()):
            name, vgg_label = OWN_LABELS[LANDSCAPE_FOLDER_VARIANTS[cls_folder.name]]
            for path in sorted(cls_folder.glob("*.mp4")):
                nested = ("recorded in 2024",) if name == "Under water" else ()
                target = folder.joinpath(name, *nested, path.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
                (vgg / "video").mkdir(parents=True, exist_ok=True)
                shutil.copy(path, vgg / "video" / path.name)
                youtube_id, start = path.stem.rsplit("_", 1)
                rows.append([youtube_id, int(start), vgg_label, split])
    rows.append(["gone0000000", 20, OWN_LABELS["wind noise"][1], "train"])  # no file
    song = next((raw / "ravdess").rglob("*.mp4"))
    shutil.copy(song, vgg / "video" / "unlisted000_000000.mp4")  # no row
    pd.DataFrame(rows).to_csv(vgg / "vggsound.csv", header=False, index=False)
    unlabelled.mkdir(parents=True)
    for path in [*sorted((raw / "greatest_hits").rglob("*_denoised.mp4")),
                 *sorted((raw / "landscape" / "into_the_wild").glob("*.mp4"))]:
        shutil.copy(path, unlabelled / path.name)
    return {
        "own_folder": {"format": "folder", "root": str(folder)},
        "own_unlabelled": {"format": "folder", "root": str(unlabelled)},
        "own_vggsound": {"format": "vggsound", "root": str(vgg / "video"), "csv": str(vgg / "vggsound.csv"),
                         "labels": None},
    }
