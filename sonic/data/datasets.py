"""Dataset adapters: the native on-disk layouts (README, Pointing the adapters at the real datasets) -> a uniform table
of source videos + rejects.

One ``index_*`` function per format. They only look at names, folders and annotation files (fast); media
problems (corrupt files, missing audio streams, silence, short clips) are found at extraction time.
The synthetic world of the demo profile is written in the same layouts, so this code is what runs on both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sonic.data.tables import Reject, Video

GREATEST_HITS_MATERIALS = (
    "wood", "metal", "dirt", "rock", "leaf", "plastic", "cloth", "paper", "grass", "water", "drywall", "gravel",
    "plastic-bag", "ceramic", "tile", "carpet", "glass",
)
LANDSCAPE_CLASSES = (
    "explosion", "fire crackling", "raining", "splashing water", "squishing water", "thunder",
    "underwater bubbling", "waterfall burbling", "wind noise",
)
# Folder names seen in the wild, after lower-casing and turning "_" / "-" into spaces.
DEFAULT_LANDSCAPE_ALIASES = {
    "fire crakling": "fire crackling",
    "fire": "fire crackling",
    "rain": "raining",
    "splashing": "splashing water",
    "squishing": "squishing water",
    "underwater": "underwater bubbling",
    "waterfall": "waterfall burbling",
    "waterfall burbing": "waterfall burbling",
    "wind": "wind noise",
}
RAVDESS_EMOTIONS = {1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fearful", 7: "disgust",
                    8: "surprised"}
RAVDESS_SONG_EMOTIONS = (1, 2, 3, 4, 5, 6)
INTO_THE_WILD_TAGS = ("Snow", "Forest", "Rain")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the config: its format, where its native copy lives, and format options."""

    name: str
    format: str  # greatest_hits | landscape | ravdess
    root: str
    into_the_wild: str | None = None  # landscape: merged Into-the-Wild folder (paper §4)
    aliases: Mapping[str, str] = field(default_factory=dict)  # landscape folder -> class


Index = tuple[list[Video], list[Reject]]


# ---- Greatest Hits ------------------------------------------------------------------------------------------
_GH_ID = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}(?:-\d+)?"
_GH_FILE = re.compile(rf"^({_GH_ID})_(denoised\.mp4|denoised\.wav|times\.txt|denoised_thumb\.mp4)$")


def parse_times(path: str | Path) -> tuple[list[tuple[float, str | None]], list[str]]:
    """``<id>_times.txt`` -> [(time, material or None)], plus one message per malformed line."""
    hits, problems = [], []
    for n, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4:
            problems.append(f"line {n}: expected 'time material action reaction', got {line.strip()!r}")
            continue
        try:
            t = float(fields[0])
        except ValueError:
            problems.append(f"line {n}: time {fields[0]!r} is not a number")
            continue
        material = None if fields[1] == "None" else fields[1]
        if material is not None and material not in GREATEST_HITS_MATERIALS:
            problems.append(f"line {n}: unknown material {material!r}")
            material = None
        hits.append((t, material))
    return sorted(hits, key=lambda h: h[0]), problems


def index_greatest_hits(spec: DatasetSpec) -> Index:
    root = Path(spec.root)
    if not root.is_dir():
        raise FileNotFoundError(f"{spec.name}: dataset root {root} is not a folder (expected Greatest Hits vis-data/)")
    videos, rejects = [], []
    files: dict[str, dict[str, Path]] = {}
    for path in sorted(root.iterdir()):
        if path.name in ("train.txt", "test.txt") or path.is_dir():
            continue
        m = _GH_FILE.match(path.name)
        if not m:
            rejects.append(Reject(spec.name, str(path), "index", "unrecognised file name for Greatest Hits"))
            continue
        files.setdefault(m[1], {})[m[2]] = path
    native: dict[str, str] = {}
    for split in ("train", "test"):
        listing = root / f"{split}.txt"
        if listing.is_file():
            for vid in listing.read_text().split():
                native[vid] = split
                if vid not in files:
                    rejects.append(Reject(spec.name, f"{listing}:{vid}", "index",
                                          f"listed in {split}.txt but {vid}_denoised.mp4 is missing"))
    for vid, parts in sorted(files.items()):
        mp4, wav, times = parts.get("denoised.mp4"), parts.get("denoised.wav"), parts.get("times.txt")
        source = str(mp4 or wav or times)
        if mp4 is None:
            rejects.append(Reject(spec.name, source, "index", f"no {vid}_denoised.mp4 video"))
            continue
        if times is None:
            rejects.append(Reject(spec.name, str(mp4), "index", f"no {vid}_times.txt annotation"))
            continue
        if mp4.stat().st_size == 0:
            rejects.append(Reject(spec.name, str(mp4), "index", "empty file (0 bytes)"))
            continue
        audio = wav if wav is not None and wav.stat().st_size > 0 else None
        meta = {"times": str(times), "audio_source": "wav" if audio else "mp4 track"}
        videos.append(Video(spec.name, vid, str(mp4), str(audio) if audio else None, None, native.get(vid), meta))
    return videos, rejects


# ---- Landscape (+ Into the Wild) ----------------------------------------------------------------------------
def _folder_key(folder: str) -> str:
    return re.sub(r"[\s_\-]+", " ", folder.strip().lower())


def landscape_class(folder: str, aliases: Mapping[str, str]) -> str | None:
    key = _folder_key(folder)
    key = aliases.get(key, DEFAULT_LANDSCAPE_ALIASES.get(key, key))
    return key if key in LANDSCAPE_CLASSES else None


def unknown_class_reason(folder: str, aliases: Mapping[str, str]) -> str:
    """The reject reason of a class folder that is neither a class nor an alias, naming the closest class."""
    import difflib

    key = _folder_key(folder)
    names = {c: c for c in LANDSCAPE_CLASSES} | DEFAULT_LANDSCAPE_ALIASES | dict(aliases)
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    hint = f"did you mean {names[close[0]]!r}? " if close and names[close[0]] in LANDSCAPE_CLASSES else ""
    return f"unknown class folder {folder!r} ({hint}add it to the dataset's aliases in the config)"


def index_landscape(spec: DatasetSpec) -> Index:
    root = Path(spec.root)
    if not root.is_dir():
        raise FileNotFoundError(f"{spec.name}: dataset root {root} is not a folder (expected landscape/)")
    videos, rejects = [], []
    aliases = {_folder_key(k): v for k, v in spec.aliases.items()}
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train", "test")]
    class_roots = [(d.name, d) for d in split_dirs] or [(None, root)]
    for split, base in class_roots:
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            label = landscape_class(folder.name, aliases)
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                if label is None:
                    rejects.append(Reject(spec.name, str(path), "index", unknown_class_reason(folder.name, aliases)))
                elif path.suffix.lower() != ".mp4":
                    rejects.append(Reject(spec.name, str(path), "index", "not an .mp4 video"))
                elif path.stat().st_size == 0:
                    rejects.append(Reject(spec.name, str(path), "index", "empty file (0 bytes)"))
                else:
                    vid = f"{split + '/' if split else ''}{folder.name}/{path.stem}"
                    videos.append(Video(spec.name, vid, str(path), None, label, split, {"source": "landscape"}))
    if spec.into_the_wild:
        v, r = index_into_the_wild(spec)
        videos += v
        rejects += r
    return videos, rejects


def into_the_wild_label(tags: list[str]) -> str:
    return "+".join(t.lower() for t in tags) if tags else "hiking"


def index_into_the_wild(spec: DatasetSpec) -> Index:
    import pandas as pd

    root = Path(spec.into_the_wild)
    meta_file = root / "metadata.xlsx"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{spec.name}: {meta_file} not found (Into the Wild needs its metadata.xlsx)")
    table = pd.read_excel(meta_file, dtype={"ID": str})
    missing = [c for c in ("ID", *INTO_THE_WILD_TAGS) if c not in table.columns]
    if missing:
        raise ValueError(f"{meta_file}: missing columns {missing}")
    videos, rejects = [], []
    listed = set()
    for _, row in table.iterrows():
        vid = str(row["ID"]).strip()
        listed.add(vid)
        path = root / f"{vid}.mp4"
        if not path.is_file():
            rejects.append(Reject(spec.name, f"{meta_file}:{vid}", "index", f"listed in metadata.xlsx but {path.name} is missing"))
            continue
        if path.stat().st_size == 0:
            rejects.append(Reject(spec.name, str(path), "index", "empty file (0 bytes)"))
            continue
        tags = [t for t in INTO_THE_WILD_TAGS if str(row[t]).strip() in ("1", "1.0")]
        label = into_the_wild_label(tags)
        videos.append(Video(spec.name, f"into_the_wild/{vid}", str(path), None, label, None,
                            {"source": "into_the_wild", "tags": tags}))
    for path in sorted(root.glob("*.mp4")):
        if path.stem not in listed:
            rejects.append(Reject(spec.name, str(path), "index", "not listed in metadata.xlsx"))
    return videos, rejects


# ---- RAVDESS (song videos) -----------------------------------------------------------------------------------
_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def parse_ravdess_name(stem: str) -> dict | None:
    m = _RAVDESS_NAME.match(stem)
    if not m:
        return None
    keys = ("modality", "vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, map(int, m.groups()), strict=True))


def index_ravdess(spec: DatasetSpec) -> Index:
    root = Path(spec.root)
    if not root.is_dir():
        raise FileNotFoundError(f"{spec.name}: dataset root {root} is not a folder (expected the RAVDESS videos)")
    videos, rejects = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        def reject(reason: str) -> None:
            rejects.append(Reject(spec.name, str(path), "index", reason))

        if path.suffix.lower() != ".mp4":
            reject("not an .mp4 video")
            continue
        f = parse_ravdess_name(path.stem)
        if f is None:
            reject("file name does not follow MM-VV-EE-II-SS-RR-AA")
        elif f["modality"] == 2:
            reject("modality 02 (video only): no audio stream")
        elif f["modality"] == 3:
            reject("modality 03 (audio only): no video")
        elif f["modality"] != 1:
            reject(f"unknown modality {f['modality']:02d}")
        elif f["vocal_channel"] != 2:
            reject(f"vocal channel {f['vocal_channel']:02d} is not song (02)")
        elif f["emotion"] not in RAVDESS_SONG_EMOTIONS:
            reject(f"emotion {f['emotion']:02d} is not defined for song (01-06)")
        elif not (1 <= f["actor"] <= 24) or f["intensity"] not in (1, 2):
            reject("actor or intensity field out of range")
        elif path.stat().st_size == 0:
            reject("empty file (0 bytes)")
        else:
            videos.append(Video(spec.name, path.stem, str(path), None, RAVDESS_EMOTIONS[f["emotion"]], None, f))
    return videos, rejects


ADAPTERS: dict[str, Callable[[DatasetSpec], Index]] = {
    "greatest_hits": index_greatest_hits,
    "landscape": index_landscape,
    "ravdess": index_ravdess,
}


def index_dataset(spec: DatasetSpec) -> Index:
    if spec.format not in ADAPTERS:
        raise ValueError(f"{spec.name}: unknown dataset format {spec.format!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[spec.format](spec)
