"""The uniform tables every dataset adapter and extraction step produces.

* ``videos``  — one row per usable source video (output of an adapter's ``index``);
* ``clips``   — one row per extracted clip (segment): frame + audio + label + time span;
* ``rejects`` — one row per skipped file or segment, with the reason. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from sonic.errors import InputError

VIDEO_COLUMNS = ["dataset", "video_id", "video", "audio", "label", "native_split", "meta"]
CLIP_COLUMNS = [
    "clip_id", "dataset", "video_id", "source", "start", "end", "label", "frame", "audio", "native_split", "meta",
]
REJECT_COLUMNS = ["dataset", "source", "stage", "reason"]


@dataclass
class Video:
    dataset: str
    video_id: str
    video: str  # path of the video file
    audio: str | None = None  # separate audio file (Greatest Hits' _denoised.wav); None = the video's own track
    label: str | None = None  # None when labels are per segment (Greatest Hits)
    native_split: str | None = None
    meta: dict = field(default_factory=dict)

    def row(self) -> dict:
        d = asdict(self)
        d["meta"] = json.dumps(self.meta, sort_keys=True)
        return d


@dataclass
class Reject:
    dataset: str
    source: str
    stage: str  # index | probe | segment | extract
    reason: str

    def row(self) -> dict:
        return asdict(self)


def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Deterministic CSV: fixed column order, LF line ends, no index, floats as written by pandas."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


def read_csv(path: str | Path) -> pd.DataFrame:
    """A table this project wrote (manifest, index, rejects, per-image scores); missing -> ``FileNotFoundError``,
    not a CSV table -> :class:`~sonic.errors.InputError`, each naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such table", str(path))
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"video_id": str, "clip_id": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a CSV table ({' '.join(str(err).split())})") from err


def read_manifest(path: str | Path, columns: tuple[str, ...] = ("clip_id",)) -> pd.DataFrame:
    """A dataset's ``manifest.csv`` (``sonic data manifest``): :func:`read_csv`, and a table without the ``columns``
    its reader needs (a clip id at least; others of :data:`CLIP_COLUMNS` and ``split``) is an
    :class:`~sonic.errors.InputError` naming the file and the missing columns."""
    table = read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: not a manifest of `sonic data manifest` (no column {', '.join(missing)})")
    return table


def slug(text: str, max_len: int = 60) -> str:
    """A file-system-safe ASCII name for ``text``; a short hash keeps distinct inputs distinct."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")[:max_len] or "item"
    if clean != text:
        clean = f"{clean}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return clean


def stable_hash(*parts) -> int:
    """A hash that does not change between runs or machines (unlike ``hash()``)."""
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16], 16)
