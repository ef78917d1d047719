"""Deterministic synthetic audio-visual world, written in the native on-disk formats of the real datasets
(docs/data.md#native-layouts).

Four datasets (Greatest Hits, Landscape, Into the Wild, RAVDESS song) as real mp4 files (H.264 128x128 at 10 fps,
AAC 48 kHz mono) plus the annotation files the real datasets have, so that the real ingestion code is what runs on
them; and, on request, corrupt and edge-case inputs inside those layouts (:func:`synth_bad_inputs`). What the
classes look and sound like, and the loudness/pitch/rhythm couplings, live in :mod:`sonic.demo.synth_world`.

Every file is a function of (seed, size, its own name) only: same seed and size give byte-identical trees. Each
dataset is written into a hidden sibling folder and renamed into place when complete; an existing non-empty target
is an error rather than something to overwrite.
"""

from __future__ import annotations

import datetime
import io
import math
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import ffmpeg
import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly

from sonic.data import media
from sonic.data.datasets import GREATEST_HITS_MATERIALS as NATIVE_MATERIALS
from sonic.data.datasets import LANDSCAPE_CLASSES as NATIVE_LANDSCAPE_CLASSES
from sonic.demo import synth_signal as s
from sonic.demo import synth_world as world

FPS = 10
AV_RATE = 48_000  # the AAC track of every mp4
GH_WAV_RATE = 96_000  # Greatest Hits <id>_denoised.wav

# the 17 labels of the real times.txt files (docs/data.md#native-layouts)
GREATEST_HITS_NATIVE_MATERIALS = NATIVE_MATERIALS
GREATEST_HITS_MATERIALS = ("wood", "metal", "water", "glass", "leaf")  # the ones synthesised (smoke: first three)
LANDSCAPE_CLASSES = tuple(world.LANDSCAPE_SCENES)  # the nine Landscape classes, canonical spelling
assert set(LANDSCAPE_CLASSES) == set(NATIVE_LANDSCAPE_CLASSES), "synthetic and native Landscape classes differ"
RAVDESS_EMOTIONS = tuple(world.RAVDESS_LOOK)  # song emotions, code = index + 1 ("01" neutral ... "06" fearful)
ITW_TAGS = ("Snow", "Forest", "Rain")

_LANDSCAPE_FOLDERS = {  # canonical class -> (train folder, test folder): spellings seen in the wild
    "explosion": ("explosion", "explosion"),
    "fire crackling": ("fire_crakling", "fire crackling"),
    "raining": ("raining", "raining"),
    "splashing water": ("splashing_water", "splashing water"),
    "squishing water": ("squishing water", "squishing_water"),
    "thunder": ("thunder", "thunder"),
    "underwater bubbling": ("underwater_bubbling", "underwater bubbling"),
    "waterfall burbling": ("waterfall burbling", "waterfall_burbling"),
    "wind noise": ("wind_noise", "wind noise"),
}
LANDSCAPE_FOLDER_VARIANTS: dict[str, str] = {f: c for c, pair in _LANDSCAPE_FOLDERS.items() for f in pair}
_ITW_TAG_SETS = (("Forest",), ("Snow",), ("Rain",), ("Forest", "Rain"), ("Snow", "Forest"), ())
BAD_KINDS = ("truncated", "no_audio", "silent", "too_short", "zero_bytes", "odd_name")
_BAD_RAVDESS_ACTOR = 24  # RAVDESS edge cases are filed under this actor, which no synthetic size uses


@dataclass(frozen=True)
class VideoFormat:
    """How a dataset's files are written: the world renders 128 x 128 frames at ``FPS`` and 48 kHz mono audio;
    ``size`` (width, height) scales the frames, ``fps`` repeats them to a higher rate, ``vfr`` drops every third
    frame of the second half (variable frame rate, each kept frame at its own time), ``audio_rate`` and
    ``channels`` resample and duplicate the audio track (the rehearsal size writes the real formats)."""

    size: tuple[int, int] | None = None
    fps: int = FPS
    vfr: bool = False
    audio_rate: int = AV_RATE
    channels: int = 1

    def write(self, path: Path, frames: np.ndarray, audio: np.ndarray | None = None) -> None:
        chain = [f"scale={self.size[0]}:{self.size[1]}:flags=bicubic"] if self.size else []
        chain += [f"fps={self.fps}"] if self.fps != FPS else []
        chain += ["select='lt(t,{half})+mod(n,3)'".format(half=len(frames) / FPS / 2)] if self.vfr else []
        if audio is not None:
            if self.audio_rate != AV_RATE:
                g = math.gcd(self.audio_rate, AV_RATE)
                audio = resample_poly(audio, self.audio_rate // g, AV_RATE // g).astype(np.float32)
            if self.channels > 1:
                audio = np.repeat(audio[:, None], self.channels, axis=1)
        media.write_video(path, frames, FPS, audio, self.audio_rate if audio is not None else None,
                          filters=",".join(chain) or None, variable_rate=self.vfr)


NATIVE = VideoFormat()


@dataclass(frozen=True)
class SynthSize:
    """How much of the world to write: counts per dataset and clip durations (seconds, [low, high])."""

    gh_videos: int
    gh_duration: tuple[float, float]
    gh_materials: tuple[str, ...]
    landscape_classes: tuple[str, ...]
    landscape_train: int  # clips per class
    landscape_test: int
    landscape_duration: tuple[float, float]
    itw_videos: int
    itw_duration: tuple[int, int]  # whole seconds (the metadata's Duration column)
    ravdess_actors: tuple[int, ...]
    ravdess_emotions: tuple[str, ...]
    ravdess_statements: tuple[str, ...]
    ravdess_repetitions: tuple[str, ...]
    ravdess_video_only: int  # the first N recordings are also written as modality 02 (no audio stream)
    # dataset -> its files' formats, cycled over the files (several: mixed resolutions); unnamed: NATIVE
    video: dict[str, tuple[VideoFormat, ...]] = field(default_factory=dict)

    def formats(self, dataset: str) -> tuple[VideoFormat, ...]:
        return self.video.get(dataset, (NATIVE,))


SMOKE = SynthSize(
    gh_videos=5,  # enough clips for a validation pair (the metrics need two references)
    gh_duration=(20.0, 23.0),
    gh_materials=GREATEST_HITS_MATERIALS[:3],
    landscape_classes=("fire crackling", "underwater bubbling", "wind noise"),
    landscape_train=2,  # stage 1 needs a class with two training clips
    landscape_test=1,
    landscape_duration=(10.0, 10.0),
    itw_videos=2,
    itw_duration=(20, 20),
    ravdess_actors=(1, 2),
    ravdess_emotions=("neutral", "happy", "sad"),
    ravdess_statements=("01",),
    ravdess_repetitions=("01",),
    ravdess_video_only=2,
)
SIZES: dict[str, SynthSize] = {
    "smoke": SMOKE,
    "demo": SynthSize(
        gh_videos=230,
        gh_duration=(30.0, 45.0),
        gh_materials=GREATEST_HITS_MATERIALS,
        landscape_classes=LANDSCAPE_CLASSES,
        landscape_train=22,
        landscape_test=4,
        landscape_duration=(10.0, 30.0),
        itw_videos=6,
        itw_duration=(20, 40),
        ravdess_actors=tuple(range(1, 17)),
        ravdess_emotions=RAVDESS_EMOTIONS,
        ravdess_statements=("01", "02"),
        ravdess_repetitions=("01",),
        ravdess_video_only=6,
    ),
    # Paper formats at a few files per dataset (workflow/configs/rehearsal.yaml): RAVDESS 1280x720 at 30 fps with
    # 48 kHz AAC, Landscape 512x288 with 44.1 kHz stereo, Into the Wild at mixed resolutions and variable frame
    # rate, Greatest Hits 1280x720 at 30 fps with its 96 kHz wav
    "rehearsal": replace(
        SMOKE,
        # two classes per dataset (the fewest stage 1 and Fig. 10 work with): each generation, scoring and edit
        # job at 512 px handles one image per class and seed, so the class count sets most of the rehearsal's time
        gh_materials=GREATEST_HITS_MATERIALS[:2],
        landscape_classes=SMOKE.landscape_classes[:2],
        ravdess_emotions=SMOKE.ravdess_emotions[:2],
        itw_videos=3,  # one per resolution below
        video={
            "greatest_hits": (VideoFormat((1280, 720), 30),),
            "landscape": (VideoFormat((512, 288), 30, audio_rate=44_100, channels=2),),
            "into_the_wild": (VideoFormat((1280, 720), 30, vfr=True), VideoFormat((640, 360), 25),
                              VideoFormat((854, 480), 30, vfr=True)),
            "ravdess": (VideoFormat((1280, 720), 30),),
        },
    ),
}


# ---- shared machinery ---------------------------------------------------------------------------------------
def _size(size: str) -> SynthSize:
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; choose one of {sorted(SIZES)}")
    return SIZES[size]


def _cycle(formats: tuple[VideoFormat, ...], n: int) -> list[VideoFormat]:
    """``n`` formats, ``formats`` repeated in order (one per file)."""
    return [formats[i % len(formats)] for i in range(n)]


def _run(jobs: list[Callable[[], object]], workers: int) -> list:
    """Run independent file-writing jobs, ``workers`` at a time (ffmpeg runs outside the GIL); their results."""
    if workers <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return [f.result() for f in [ex.submit(job) for job in jobs]]


def _write_dataset(root: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Write a dataset folder atomically: into ``root/.<name>.partial``, then renamed to ``root/<name>``."""
    root = Path(root)
    target = root / name
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target}: already exists and is not empty; remove it to regenerate")
    partial = root / f".{name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        fill(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    partial.rename(target)
    return target


_YT_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _youtube_ids(rng: np.random.Generator, n: int, taken: set[str] | None = None) -> list[str]:
    """``n`` distinct fake 11-character YouTube ids (never starting with '-', which reads as a CLI option)."""
    taken, out = set(taken or ()), []
    while len(out) < n:
        vid = "".join(rng.choice(_YT_ALPHABET[:62])) + "".join(rng.choice(_YT_ALPHABET, 10))
        if vid not in taken:
            taken.add(vid)
            out.append(vid)
    return out


def _duration(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A duration in whole frames."""
    return round(rng.uniform(*bounds) * FPS) / FPS


def _truncate(path: Path) -> None:
    """Cut a valid mp4 to half its bytes as an interrupted download does. It is first remuxed without
    ``+faststart``, so the index (moov atom) sits after the media data and is lost: no reader can open the file."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.mp4"
        stream = ffmpeg.input(str(path)).output(str(plain), c="copy", map="0", fflags="+bitexact")
        media.run(stream.global_args("-nostdin", "-loglevel", "error", "-y"), path)
        data = plain.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_xlsx(path: Path, df: pd.DataFrame) -> None:
    """``df`` as an xlsx whose bytes do not depend on the clock (fixed zip and document timestamps)."""
    buf = io.BytesIO()
    df.to_excel(buf, index=False, engine="openpyxl")
    stamp = b"2020-01-01T00:00:00Z"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", stamp, data)
            entry = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            out.writestr(entry, data)


def _clip(path: Path, scene: s.Scene, sound: np.ndarray | None, duration: float, db: float,
          fmt: VideoFormat = NATIVE) -> None:
    """Render ``scene`` for ``duration`` s at the brightness of ``db`` and mux ``sound`` (None: no audio stream)."""
    frames = s.to_uint8(s.render(scene, int(round(duration * FPS)), world.brightness_gain(db)))
    audio = None if sound is None else s.at_rms(sound, db) if np.any(sound) else sound.astype(np.float32)
    fmt.write(path, frames, audio)


# ---- Greatest Hits ------------------------------------------------------------------------------------------
def _gh_ids(rng: np.random.Generator, n: int, start: datetime.datetime) -> list[str]:
    """Chronological ids ``YYYY-MM-DD-HH-MM-SS``; about one session in five has a second take ``...-1``."""
    ids, day = set(), start
    while len(ids) < n:
        day += datetime.timedelta(days=int(rng.integers(0, 4)))
        stamp = day.replace(hour=int(rng.integers(10, 20)), minute=int(rng.integers(60)), second=int(rng.integers(60)))
        base = stamp.strftime("%Y-%m-%d-%H-%M-%S")
        ids.add(base)
        if rng.random() < 0.2 and len(ids) < n:
            ids.add(f"{base}-1")
    return sorted(ids)


def _gh_plan(rng: np.random.Generator, usable: float, materials: tuple[str, ...]) -> tuple[list[dict], list[tuple]]:
    """Segments (8-18 s on one material, 0.6-2 s pauses between) and their hits ``(time, segment, label, action,
    reaction, tip)``; per segment a pitch, a hit rate and a loudness drive both the sound and the picture."""
    order = [str(m) for m in rng.permutation(materials)]  # cycled, so materials are balanced and always switch
    segs, t = [], min(rng.uniform(0.3, 1.0), 0.3 * usable)
    while t < usable - 3.0 or not segs:
        end = min(t + rng.uniform(8.0, 18.0), usable - 0.2)
        mat = order[len(segs) % len(order)]
        segs.append(dict(start=t, end=end, material=mat, p=world.pitch_factor(rng), r=world.rhythm_factor(rng, 0.8)))
        t = end + rng.uniform(0.6, 2.0)
    for sg, db in zip(segs, world.loudness_levels(rng, len(segs))):
        sg["db"] = db
    hits = []
    for k, sg in enumerate(segs):
        centre = rng.uniform(40, 88, 2)
        t = sg["start"]
        while t < sg["end"]:
            u = rng.random()
            action = None if u < 0.05 else "scratch" if u < 0.15 else "hit"
            label = None if rng.random() < 0.015 else sg["material"]  # the annotator was unsure
            reaction = str(rng.choice(world.GH_MATERIALS[sg["material"]]["reactions"]))
            hits.append((t, k, label, action, reaction, centre + rng.uniform(-14, 14, 2)))
            t += rng.uniform(0.6, 1.4) / (1.5 * sg["r"])
    return segs, hits


def _gh_sound(rng: np.random.Generator, segs: list[dict], hits: list[tuple], n: int) -> np.ndarray:
    """96 kHz: a faint room floor plus one decaying impact (or scratch) per hit, peak level from the loudness."""
    x = 10 ** (-66 / 20) * rng.standard_normal(n)
    banks = [[world.gh_hit_sound(sg["material"], rng, GH_WAV_RATE, sg["p"]) for _ in range(4)] for sg in segs]
    scratches = [world.gh_hit_sound(sg["material"], rng, GH_WAV_RATE, sg["p"], scratch=True) for sg in segs]
    for t, k, _, action, _, _ in hits:
        tpl = scratches[k] if action == "scratch" else banks[k][rng.integers(4)]
        s.add_at(x, tpl, t, GH_WAV_RATE, 10 ** ((segs[k]["db"] + 10) / 20) * rng.uniform(0.7, 1.0))
    return s.soft_limit(x)


def _gh_frames(rng: np.random.Generator, segs: list[dict], hits: list[tuple], n_frames: int) -> np.ndarray:
    """The segment's surface (cut at the middle of each pause), the drumstick between hits, a flash on contact."""
    bases = [
        s.render(world.gh_surface(sg["material"], rng, sg["p"], sg["r"]), 1, world.brightness_gain(sg["db"]))[0]
        for sg in segs
    ]
    switch = [(a["end"] + b["start"]) / 2 for a, b in zip(segs[:-1], segs[1:])]
    times = np.array([h[0] for h in hits])
    frames = np.empty((n_frames, s.H, s.W, 3), np.uint8)
    for i in range(n_frames):
        t = i / FPS
        frame = bases[int(np.searchsorted(switch, t))].copy()
        j = int(np.searchsorted(times, t))  # the next hit
        near = min((j - 1, j), key=lambda q: abs(times[q] - t) if 0 <= q < len(times) else np.inf)
        if 0 < j < len(times) and hits[j - 1][1] == hits[j][1]:  # between two hits: lift, move, come down
            phase = (t - times[j - 1]) / (times[j] - times[j - 1])
            w = phase * phase * (3 - 2 * phase)
            tip, lift = (1 - w) * hits[j - 1][5] + w * hits[j][5], 22 * np.sin(np.pi * phase)
        else:
            tip, lift = hits[near][5], 22.0
        contact = abs(times[near] - t) < 0.5 / FPS
        world.gh_stick(frame, tuple(tip), 0.0 if contact else lift, contact)
        frames[i] = s.to_uint8(frame)
    return frames


def _gh_video(
    folder: Path,
    vid: str,
    duration: float,
    audio_delta: float,
    materials: tuple[str, ...],
    seed: int,
    audio: str = "normal",
    fmt: VideoFormat = NATIVE,
) -> None:
    """``<vid>_denoised.mp4``, ``_denoised.wav`` (96 kHz, ``audio_delta`` s longer than the video) and
    ``_times.txt``. ``audio``: "normal", "silent" (all-zero wav and AAC track) or "none" (no audio stream, no wav)."""
    rng = s.rng_for(seed, "greatest_hits", vid)
    segs, hits = _gh_plan(rng, min(duration, duration + audio_delta), materials)
    with open(folder / f"{vid}_times.txt", "w") as f:
        for t, _, label, action, reaction, _ in hits:
            f.write(f"{t:.6f} {label or 'None'} {action or 'None'} {reaction}\n")
    x = _gh_sound(rng, segs, hits, int(round((duration + audio_delta) * GH_WAV_RATE)))
    frames = _gh_frames(rng, segs, hits, int(round(duration * FPS)))
    mp4 = folder / f"{vid}_denoised.mp4"
    if audio == "none":
        fmt.write(mp4, frames)
        return
    if audio == "silent":
        x = np.zeros_like(x)
    sf.write(folder / f"{vid}_denoised.wav", x.astype(np.float32), GH_WAV_RATE, subtype="PCM_16")
    fmt.write(mp4, frames, resample_poly(x, 1, GH_WAV_RATE // AV_RATE).astype(np.float32))


def synth_greatest_hits(root: Path, size: str = "demo", seed: int = 0, *, workers: int = 2) -> Path:
    """Write ``root/vis-data`` (flat, docs/data.md): per id the mp4, 96 kHz wav
    and times.txt; train.txt/test.txt."""
    cfg = _size(size)

    def fill(out: Path) -> None:
        rng = s.rng_for(seed, "greatest_hits", "layout")
        ids = _gh_ids(rng, cfg.gh_videos, datetime.datetime(2015, 2, 3))
        durations = [_duration(rng, cfg.gh_duration) for _ in ids]
        # every third recording (the 2nd, 5th, ...) has audio a few hundred ms shorter or longer than its video
        deltas = [0.0 if i % 3 != 1 else (-1) ** (i // 3 + 1) * float(rng.uniform(0.15, 0.4)) for i in range(len(ids))]
        test = set(rng.choice(len(ids), max(1, round(0.2 * len(ids))), replace=False).tolist())
        (out / "train.txt").write_text("".join(f"{v}\n" for i, v in enumerate(ids) if i not in test))
        (out / "test.txt").write_text("".join(f"{v}\n" for i, v in enumerate(ids) if i in test))
        jobs = [
            lambda v=v, d=d, a=a, f=f: _gh_video(out, v, d, a, cfg.gh_materials, seed, fmt=f)
            for v, d, a, f in zip(ids, durations, deltas, _cycle(cfg.formats("greatest_hits"), len(ids)))
        ]
        _run(jobs, workers)

    return _write_dataset(root, "vis-data", fill)


# ---- Landscape ----------------------------------------------------------------------------------------------
def _landscape_clip(
    path: Path, cls: str, rng: np.random.Generator, duration: float, db: float, audio: str = "normal",
    fmt: VideoFormat = NATIVE,
) -> None:
    p, r = world.pitch_factor(rng), world.rhythm_factor(rng)
    scene = world.LANDSCAPE_SCENES[cls](rng, p, r)
    sound = None if audio == "none" else world.LANDSCAPE_SOUNDS[cls](rng, int(duration * AV_RATE), AV_RATE, p, r)
    if audio == "silent":
        sound = np.zeros_like(sound)
    _clip(path, scene, sound, duration, db, fmt)


def synth_landscape(root: Path, size: str = "demo", seed: int = 0, *, workers: int = 2) -> Path:
    """Write ``root/landscape/{train,test}/<class folder>/<ytid>_<start>.mp4`` (folder names vary in spelling)."""
    cfg = _size(size)

    def fill(out: Path) -> None:
        jobs, taken = [], set()
        for cls in cfg.landscape_classes:
            rng = s.rng_for(seed, "landscape", cls)
            n = cfg.landscape_train + cfg.landscape_test
            names = _youtube_ids(rng, n, taken)
            taken.update(names)
            for j, (vid, db) in enumerate(zip(names, world.loudness_levels(rng, n))):
                split = 0 if j < cfg.landscape_train else 1
                folder = out / ("train", "test")[split] / _LANDSCAPE_FOLDERS[cls][split]
                path = folder / f"{vid}_{int(rng.integers(0, 300)) * 10:06d}.mp4"
                duration = _duration(rng, cfg.landscape_duration)
                jobs.append(
                    lambda p=path, c=cls, j=j, d=duration, db=db: _landscape_clip(
                        p, c, s.rng_for(seed, "landscape", c, j), d, db, fmt=cfg.formats("landscape")[0]
                    )
                )
        _run(jobs, workers)

    return _write_dataset(root, "landscape", fill)


# ---- Into the Wild ------------------------------------------------------------------------------------------
def synth_into_the_wild(root: Path, size: str = "demo", seed: int = 0, *, workers: int = 2) -> Path:
    """Write ``root/into_the_wild/<ytid>.mp4`` and ``metadata.xlsx`` (ID, Snow, Forest, Rain, Duration)."""
    cfg = _size(size)

    def fill(out: Path) -> None:
        rng = s.rng_for(seed, "into_the_wild", "layout")
        ids = _youtube_ids(rng, cfg.itw_videos)
        levels = world.loudness_levels(rng, cfg.itw_videos)
        rows, jobs = [], []
        for k, (vid, db) in enumerate(zip(ids, levels)):
            tags = set(_ITW_TAG_SETS[k % len(_ITW_TAG_SETS)])
            duration = int(rng.integers(cfg.itw_duration[0], cfg.itw_duration[1] + 1))
            rows.append({"ID": vid, **{t: 1 if t in tags else np.nan for t in ITW_TAGS}, "Duration": duration})

            def job(vid=vid, tags=tags, duration=duration, db=db, fmt=_cycle(cfg.formats("into_the_wild"), k + 1)[k]):
                rng = s.rng_for(seed, "into_the_wild", vid)
                p, r = world.pitch_factor(rng), world.rhythm_factor(rng, 0.5)  # r: walking pace
                scene = world.itw_scene(rng, tags, p, r)
                _clip(
                    out / f"{vid}.mp4",
                    scene,
                    world.itw_sound(rng, duration * AV_RATE, AV_RATE, tags, p, r),
                    duration,
                    db,
                    fmt,
                )

            jobs.append(job)
        _write_xlsx(out / "metadata.xlsx", pd.DataFrame(rows, columns=["ID", *ITW_TAGS, "Duration"]))
        _run(jobs, workers)

    return _write_dataset(root, "into_the_wild", fill)


# ---- RAVDESS (song) -----------------------------------------------------------------------------------------
_EMOTION_DB = {"neutral": 0.0, "calm": -3.0, "happy": 1.0, "sad": -3.0, "angry": 3.0, "fearful": 0.0}


def _ravdess_name(modality: str, emotion: str, intensity: str, statement: str, rep: str, actor: int) -> str:
    return f"{modality}-02-{RAVDESS_EMOTIONS.index(emotion) + 1:02d}-{intensity}-{statement}-{rep}-{actor:02d}.mp4"


def _actor_dir(out: Path, actor: int) -> Path:
    return out / f"Video_Song_Actor_{actor:02d}" / f"Actor_{actor:02d}"


def _ravdess_file(
    out: Path,
    emotion: str,
    intensity: str,
    statement: str,
    rep: str,
    actor: int,
    seed: int,
    video_only_copy: bool = False,
    audio: str = "normal",
    duration: float | None = None,
    folder: Path | None = None,
    fmt: VideoFormat = NATIVE,
) -> Path:
    """One sung recording; intensity 02 is louder, brighter and more expressive; odd actors sing an octave lower."""
    name = _ravdess_name("01", emotion, intensity, statement, rep, actor)
    rng = s.rng_for(seed, "ravdess", name)
    look = world.RAVDESS_LOOK[emotion]
    duration = duration or round(rng.uniform(4.0, 5.0) * FPS) / FPS
    actor_shift = np.random.default_rng([11, actor]).uniform(-2, 2)  # an actor's own register, in semitones
    f0 = (110.0 if actor % 2 else 220.0) * 2 ** ((look["shift"] + actor_shift + rng.uniform(-1, 1)) / 12)
    tempo = look["tempo"] * world.rhythm_factor(rng, 0.25)
    db = -26.0 + (8.0 if intensity == "02" else 0.0) + _EMOTION_DB[emotion] + rng.uniform(-2, 2)
    db = float(np.clip(db, *world.LOUDNESS_DB))
    song, env = world.ravdess_song(rng, AV_RATE, duration, emotion, statement, f0, tempo)
    scene = world.ravdess_face(rng, emotion, intensity, actor, f0 / world.REF_F0, tempo / 3.0)
    base = s.render(scene, 1, world.brightness_gain(db))[0]
    n_frames = int(round(duration * FPS))
    hop = AV_RATE // FPS
    level = np.array([env[i * hop : (i + 1) * hop].mean() if i * hop < len(env) else 0.0 for i in range(n_frames)])
    level = level / (level.max() + 1e-9)
    frames = np.empty((n_frames, s.H, s.W, 3), np.uint8)
    for i in range(n_frames):
        frame = base.copy()
        world.ravdess_mouth(frame, emotion, intensity, float(level[i]))
        frames[i] = s.to_uint8(frame)
    folder = folder or _actor_dir(out, actor)
    path = folder / name
    if audio == "none":
        fmt.write(path, frames)
    else:
        fmt.write(path, frames, np.zeros(len(song), np.float32) if audio == "silent" else s.at_rms(song, db))
    if video_only_copy:  # the same performance, as the video-only (modality 02) file: no audio stream
        fmt.write(folder / _ravdess_name("02", emotion, intensity, statement, rep, actor), frames)
    return path


def synth_ravdess(root: Path, size: str = "demo", seed: int = 0, *, workers: int = 2) -> Path:
    """Write ``root/ravdess/Video_Song_Actor_XX/Actor_XX/MM-02-EE-II-SS-RR-AA.mp4`` (emotions 01-06 only)."""
    cfg = _size(size)

    def fill(out: Path) -> None:
        combos = [
            (emotion, intensity, statement, rep, actor)
            for actor in cfg.ravdess_actors
            for emotion in cfg.ravdess_emotions
            for intensity in (("01",) if emotion == "neutral" else ("01", "02"))  # no strong neutral in RAVDESS
            for statement in cfg.ravdess_statements
            for rep in cfg.ravdess_repetitions
        ]
        jobs = [
            lambda c=c, k=k: _ravdess_file(out, *c, seed, video_only_copy=k < cfg.ravdess_video_only,
                                           fmt=cfg.formats("ravdess")[0])
            for k, c in enumerate(combos)
        ]
        _run(jobs, workers)

    return _write_dataset(root, "ravdess", fill)


# ---- corrupt and edge-case inputs ---------------------------------------------------------------------------
def synth_bad_inputs(dataset_root: Path, dataset: str, seed: int = 0, *, workers: int = 2) -> list[tuple[str, str]]:
    """Write edge-case files into an existing synthetic layout; return ``[(path relative to dataset_root, kind)]``.

    Kinds: ``truncated`` (a valid mp4 cut to half its bytes, its moov atom lost as in an interrupted download),
    ``no_audio`` (no audio stream where one is required), ``silent`` (all-zero audio), ``too_short`` (1 s; 0.5 s
    for RAVDESS), ``zero_bytes``, and ``odd_name``: a VALID clip whose path has a space, a quote and non-ASCII
    characters (Landscape: the file name; RAVDESS, whose names are fixed: a sub-folder of the actor folder).
    Greatest Hits has no ``odd_name``: its flat layout admits only ``YYYY-MM-DD-HH-MM-SS[-N]`` ids, so such a file
    could not be valid. Greatest Hits edge cases are new ids appended to train.txt, each with its times.txt and
    (except ``no_audio``, which has no audio anywhere) its wav; RAVDESS ones are filed under actor 24, which no
    synthetic size uses. Writing them twice gives the same files and listing.
    """
    writers = {"greatest_hits": _bad_greatest_hits, "landscape": _bad_landscape, "ravdess": _bad_ravdess}
    if dataset not in writers:
        raise ValueError(f"no bad inputs for dataset {dataset!r}; choose one of {sorted(writers)}")
    root = Path(dataset_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder; write the synthetic dataset first")
    return writers[dataset](root, seed, workers)


def _bad_greatest_hits(root: Path, seed: int, workers: int) -> list[tuple[str, str]]:
    listed = {v for f in ("train.txt", "test.txt") if (root / f).exists() for v in (root / f).read_text().split()}
    ids = _gh_ids(s.rng_for(seed, "bad", "greatest_hits"), 5, datetime.datetime(2016, 11, 1))  # after all 2015 ids
    mats = GREATEST_HITS_MATERIALS[:3]
    kinds = dict(zip(("truncated", "no_audio", "silent", "too_short", "zero_bytes"), ids))
    _run(
        [
            lambda: _gh_video(root, kinds["truncated"], 11.0, 0.0, mats, seed),
            lambda: _gh_video(root, kinds["no_audio"], 11.0, 0.0, mats, seed, audio="none"),
            lambda: _gh_video(root, kinds["silent"], 11.0, 0.0, mats, seed, audio="silent"),
            lambda: _gh_video(root, kinds["too_short"], 1.0, 0.0, mats, seed),
            lambda: _gh_video(root, kinds["zero_bytes"], 11.0, 0.0, mats, seed),
        ],
        workers,
    )
    _truncate(root / f"{kinds['truncated']}_denoised.mp4")
    (root / f"{kinds['zero_bytes']}_denoised.mp4").write_bytes(b"")
    new = [v for v in ids if v not in listed]
    with open(root / "train.txt", "a") as f:
        f.write("".join(f"{v}\n" for v in new))
    return [(f"{vid}_denoised.mp4", kind) for kind, vid in kinds.items()]


def _bad_landscape(root: Path, seed: int, workers: int) -> list[tuple[str, str]]:
    folders = sorted(p for p in (root / "train").iterdir() if p.is_dir() and p.name in LANDSCAPE_FOLDER_VARIANTS)
    if not folders:
        raise FileNotFoundError(f"{root}/train: no Landscape class folders")
    rng = s.rng_for(seed, "bad", "landscape")
    names = _youtube_ids(rng, 5)
    folder = folders[0]
    cls = LANDSCAPE_FOLDER_VARIANTS[folder.name]
    odd_folder = folders[-1]
    odd_cls = LANDSCAPE_FOLDER_VARIANTS[odd_folder.name]
    plan = {  # kind -> (path, duration, audio); duration None: an empty file
        "truncated": (folder / f"{names[0]}_000000.mp4", 10.0, "normal"),
        "no_audio": (folder / f"{names[1]}_000000.mp4", 10.0, "none"),
        "silent": (folder / f"{names[2]}_000000.mp4", 10.0, "silent"),
        "too_short": (folder / f"{names[3]}_000000.mp4", 1.0, "normal"),
        "zero_bytes": (folder / f"{names[4]}_000000.mp4", None, None),
        "odd_name": (odd_folder / f"été '{odd_cls.split()[0]}' clip.mp4", 10.0, "normal"),
    }
    jobs = [
        lambda k=k, p=p, d=d, a=a: _landscape_clip(
            p, odd_cls if k == "odd_name" else cls, s.rng_for(seed, "bad", "landscape", k), d, -22.0, a
        )
        for k, (p, d, a) in plan.items()
        if d is not None
    ]
    _run(jobs, workers)
    _truncate(plan["truncated"][0])
    plan["zero_bytes"][0].write_bytes(b"")
    return [(p.relative_to(root).as_posix(), k) for k, (p, _, _) in plan.items()]


def _bad_ravdess(root: Path, seed: int, workers: int) -> list[tuple[str, str]]:
    actor = _BAD_RAVDESS_ACTOR
    plan = {  # kind -> (emotion, audio, duration)
        "truncated": ("neutral", "normal", None),
        "no_audio": ("calm", "none", None),
        "silent": ("happy", "silent", None),
        "too_short": ("sad", "normal", 0.5),
    }
    jobs = [
        lambda e=e, a=a, d=d: _ravdess_file(root, e, "01", "01", "01", actor, seed, audio=a, duration=d)
        for e, a, d in plan.values()
    ]
    # a valid recording in a copied folder whose name has a space, a quote and non-ASCII characters (RAVDESS
    # file names themselves are fixed by the naming convention)
    odd = _actor_dir(root, actor) / "copie d'été"
    jobs.append(lambda: _ravdess_file(root, "fearful", "02", "02", "02", actor, seed, folder=odd))
    paths = dict(zip([*plan, "odd_name"], _run(jobs, workers)))
    _truncate(paths["truncated"])
    zero = _actor_dir(root, actor) / _ravdess_name("01", "angry", "01", "01", "01", actor)
    zero.write_bytes(b"")
    paths["zero_bytes"] = zero
    return [(paths[k].relative_to(root).as_posix(), k) for k in BAD_KINDS]
