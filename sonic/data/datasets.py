"""Dataset adapters: the native on-disk layouts (docs/data.md#native-layouts; docs/own_videos.md
for ``folder`` and ``vggsound``) -> a uniform table of source videos + rejects.

One ``index_*`` function per format. They only look at names, folders and annotation files (fast); media
problems (corrupt files, missing audio streams, silence, short clips) are found at extraction time.
The synthetic world of the demo profile is written in the same layouts, so this code is what runs on both.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sonic.config import ConfigError
from sonic.data.tables import Reject, Video

log = logging.getLogger(__name__)

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
PAPER_FORMATS = ("greatest_hits", "landscape", "ravdess")  # the paper's datasets, which the synthetic world imitates
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")  # what a `folder` or `vggsound` dataset reads
VGGSOUND_SPLITS = ("train", "test")
VGGSOUND_SECONDS = 10.0  # one clip per row: the first 10 s of its file
VGGSOUND_MIN_SECONDS = 9.0  # shorter files (the YouTube video ended early, a cut download) are rejects


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the config: its format, where its native copy lives, and format options."""

    name: str
    format: str  # greatest_hits | landscape | ravdess | folder | vggsound
    root: str
    into_the_wild: str | None = None  # landscape: merged Into-the-Wild folder (paper §4)
    aliases: Mapping[str, str] = field(default_factory=dict)  # landscape folder -> class
    csv: str | None = None  # vggsound: the published vggsound.csv
    labels: tuple[str, ...] | None = None  # vggsound: the classes kept (None: all)

    @classmethod
    def from_config(cls, name: str, entry: Mapping) -> DatasetSpec:
        """The spec of ``data.datasets.<name>`` (its mapping in the config)."""
        labels = entry.get("labels")
        return cls(name=name, format=entry["format"], root=entry["root"], into_the_wild=entry.get("into_the_wild"),
                   aliases=entry.get("aliases") or {}, csv=entry.get("csv"),
                   labels=tuple(unicodedata.normalize("NFC", x) for x in labels) if labels is not None else None)


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


# ---- your own videos: class folders -------------------------------------------------------------------------
def _is_video(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def _walk(root: Path, hidden: list[Path] | None = None):
    """(folder, file names) below ``root`` in sorted order, following links to folders (each real folder once, so a
    link loop ends); hidden folders (``.name``) are not entered, and appended to ``hidden`` when given."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        if hidden is not None:
            hidden += [Path(dirpath) / d for d in sorted(dirnames) if d.startswith(".")]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), sorted(filenames)


def folder_has_labels(root: str | Path) -> bool:
    """Whether a ``folder`` dataset is labelled: True as soon as one (non-hidden) folder below ``root`` holds a
    video file at any depth; False when the videos sit directly under ``root`` (or there are none)."""
    root = Path(root)
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(_is_video(f) for _, filenames in _walk(sub) for f in filenames):
            return True
    return False


def label_of_folder(name: str) -> str:
    """A label folder's name as written (spaces, punctuation and case kept), in Unicode NFC: macOS writes names
    decomposed (``e`` + combining accent), so the same folder copied from another machine gives the same label."""
    return unicodedata.normalize("NFC", name)


def index_folder(spec: DatasetSpec) -> Index:
    """``root/<label>/**/<video>`` (label: the first folder's name, :func:`label_of_folder`) or, for a dataset
    without labels, ``root/<video>`` (label None). Videos: :data:`VIDEO_SUFFIXES`, any case. Every other file, a
    hidden file, an empty file and, beside label folders, a video directly under ``root`` is a reject."""
    root = Path(spec.root)
    if not root.is_dir():
        raise FileNotFoundError(f"{spec.name}: dataset root {root} is not a folder (expected <root>/<label>/<videos> "
                                "or, without labels, the videos directly in it)")
    labelled = folder_has_labels(root)
    videos, rejects = [], []
    found: list[tuple[Path, str | None, str]] = []  # (path, label, id without the suffix)
    hidden: list[Path] = []
    for folder, filenames in _walk(root, hidden):
        for name in filenames:
            path = folder / name
            rel = path.relative_to(root)

            def reject(reason: str) -> None:
                rejects.append(Reject(spec.name, str(path), "index", reason))

            if name.startswith("."):
                reject("hidden file (name starting with '.')")
            elif not _is_video(name):
                reject(f"not a video file (a folder dataset reads {', '.join(VIDEO_SUFFIXES)})")
            elif len(rel.parts) == 1 and labelled:
                reject("video directly under the root beside label folders: put it in its label's folder (a dataset "
                       "without labels has all its videos directly under the root and no label folders)")
            elif path.stat().st_size == 0:
                reject("empty file (0 bytes)")
            else:
                label = label_of_folder(rel.parts[0]) if labelled else None
                found.append((path, label, unicodedata.normalize("NFC", rel.with_suffix("").as_posix())))
    rejects += [Reject(spec.name, str(h), "index", "hidden folder (name starting with '.'), not read") for h in hidden]
    stems = Counter(vid for _, _, vid in found)
    for path, label, vid in sorted(found):
        if stems[vid] > 1:  # clip.mp4 beside clip.mkv: both kept, told apart by their suffix
            vid = unicodedata.normalize("NFC", path.relative_to(root).as_posix())
        videos.append(Video(spec.name, vid, str(path), None, label, None, {"source": "folder"}))
    return videos, rejects


# ---- VGGSound-style lists ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VggSoundRow:
    line: int
    youtube_id: str
    start: int
    label: str
    split: str

    @property
    def clip(self) -> str:
        """The file name without suffix, as the common download scripts write it: ``<id>_<start, 6 digits>``."""
        return f"{self.youtube_id}_{self.start:06d}"


def read_vggsound_csv(path: str | Path) -> tuple[list[VggSoundRow], list[str]]:
    """The rows of a ``vggsound.csv`` (no header; YouTube id, start second, label, train/test; labels with commas
    are quoted fields) and one message per malformed line (``line N: ...``)."""
    rows, problems = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for n, fields in enumerate(csv.reader(f), 1):
            if not any(x.strip() for x in fields):
                continue
            if len(fields) != 4:
                problems.append(f"line {n}: expected 4 fields (YouTube id, start second, label, train/test), got "
                                f"{len(fields)}: {','.join(fields)[:80]!r}")
                continue
            ytid, start, label, split = (x.strip() for x in fields)
            if not re.fullmatch(r"\d+(\.0*)?", start):
                problems.append(f"line {n}: start second {start!r} is not a whole number of seconds")
            elif split not in VGGSOUND_SPLITS:
                problems.append(f"line {n}: split {split!r} is neither of {list(VGGSOUND_SPLITS)}")
            elif not ytid or not label:
                problems.append(f"line {n}: empty YouTube id or label")
            else:
                rows.append(VggSoundRow(n, ytid, int(float(start)), unicodedata.normalize("NFC", label), split))
    return rows, problems


def closest(name: str, known: list[str]) -> str:
    """`` (closest: 'x')`` for the known name nearest ``name`` (difflib), or nothing."""
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
    return f" (closest: {match[0]!r})" if match else ""


def check_vggsound_labels(spec: DatasetSpec, rows: list[VggSoundRow]) -> None:
    """A :class:`ConfigError` for a name in ``labels`` that no row of the CSV carries, naming the closest label."""
    known = sorted({r.label for r in rows})
    for label in spec.labels or ():
        if label not in known:
            raise ConfigError(f"data.datasets.{spec.name}.labels: {label!r} is not a label of {spec.csv}"
                              f"{closest(label, known)}; {len(known)} labels there")


def index_vggsound(spec: DatasetSpec) -> Index:
    """One video per row of ``csv`` whose file ``<id>_<start:06d>.<suffix>`` lies anywhere under ``root``, with the
    row's label and its train/test as the native split. Rows without a file, files no row lists, malformed rows and
    files of labels left out by ``labels`` are rejects; rows of labels left out without a file are only counted."""
    root, table = Path(spec.root), Path(spec.csv or "")
    if not spec.csv or not table.is_file():
        raise FileNotFoundError(f"{spec.name}: the VGGSound list {spec.csv} is not a file (data.datasets.{spec.name}"
                                ".csv: the published vggsound.csv)")
    if not root.is_dir():
        raise FileNotFoundError(f"{spec.name}: dataset root {root} is not a folder (expected the clips "
                                "<YouTube id>_<start, 6 digits>.mp4)")
    rows, problems = read_vggsound_csv(table)
    check_vggsound_labels(spec, rows)
    rejects = [Reject(spec.name, str(table), "index", p) for p in problems]
    files: dict[str, Path] = {}
    hidden: list[Path] = []
    for folder, filenames in _walk(root, hidden):
        for name in filenames:
            path = folder / name
            if name.startswith("."):
                rejects.append(Reject(spec.name, str(path), "index", "hidden file (name starting with '.')"))
            elif not _is_video(name):
                rejects.append(Reject(spec.name, str(path), "index",
                                      f"not a video file (a vggsound dataset reads {', '.join(VIDEO_SUFFIXES)})"))
            elif path.stem in files:
                rejects.append(Reject(spec.name, str(path), "index", f"a second file of clip {path.stem} (kept: "
                                      f"{files[path.stem]})"))
            else:
                files[path.stem] = path
    rejects += [Reject(spec.name, str(h), "index", "hidden folder (name starting with '.'), not read") for h in hidden]
    keep = set(spec.labels) if spec.labels else None
    videos, listed, seen, left_out, missing = [], set(), {}, 0, 0
    for row in rows:
        listed.add(row.clip)
        path = files.get(row.clip)
        where = f"{table}:{row.clip}"
        if keep is not None and row.label not in keep:
            left_out += 1
            if path is not None:
                rejects.append(Reject(spec.name, str(path), "index",
                                      f"label {row.label!r} (line {row.line}) is not among the dataset's labels"))
        elif row.clip in seen:
            rejects.append(Reject(spec.name, where, "index",
                                  f"line {row.line}: the same clip as line {seen[row.clip]}"))
        elif path is None:
            missing += 1
            rejects.append(Reject(spec.name, where, "index", f"line {row.line} ({row.label}, {row.split}): no file "
                                  f"{row.clip}.<{'|'.join(s[1:] for s in VIDEO_SUFFIXES)}> under {root}"))
        elif path.stat().st_size == 0:
            rejects.append(Reject(spec.name, str(path), "index", "empty file (0 bytes)"))
        else:
            videos.append(Video(spec.name, row.clip, str(path), None, row.label, row.split,
                                {"source": "vggsound", "line": row.line}))
        seen.setdefault(row.clip, row.line)
    unlisted = sorted(set(files) - listed)
    for clip in unlisted:
        rejects.append(Reject(spec.name, str(files[clip]), "index", f"not listed in {table}"))
    log.info("%s: %d rows in %s (%d malformed); %d clips found, %d rows without a file, %d files no row lists, "
             "%d rows of labels left out", spec.name, len(rows), table, len(problems), len(videos), missing,
             len(unlisted), left_out)
    return videos, rejects


ADAPTERS: dict[str, Callable[[DatasetSpec], Index]] = {
    "greatest_hits": index_greatest_hits,
    "landscape": index_landscape,
    "ravdess": index_ravdess,
    "folder": index_folder,
    "vggsound": index_vggsound,
}


def index_dataset(spec: DatasetSpec) -> Index:
    if spec.format not in ADAPTERS:
        raise ValueError(f"{spec.name}: unknown dataset format {spec.format!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[spec.format](spec)


def has_labels(spec: DatasetSpec) -> bool:
    """Whether the dataset's clips carry labels: every format does but a ``folder`` whose videos sit directly under
    its root (:func:`folder_has_labels`). A root that does not exist yet counts as labelled (its index job then
    fails naming it). Read from the files, so the workflow can lay out a dataset's jobs before indexing it."""
    if spec.format != "folder" or not Path(spec.root).is_dir():
        return True
    return folder_has_labels(spec.root)


def check_config(spec: DatasetSpec) -> None:
    """What can be checked before anything runs: a vggsound dataset's ``labels`` against its CSV
    (:func:`check_vggsound_labels`; nothing when the CSV is not there yet, the index then names it)."""
    if spec.format == "vggsound" and spec.labels and spec.csv and Path(spec.csv).is_file():
        check_vggsound_labels(spec, read_vggsound_csv(spec.csv)[0])
