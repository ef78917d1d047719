"""Synthetic world (docs/data.md) in the native layouts of the real datasets
(docs/data.md#native-layouts): names, streams, determinism, couplings, bad inputs."""

import hashlib
import math
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sonic.data import media
from sonic.demo import synth

GH_ID = r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d(?:-\d+)?"
GH_FILE = re.compile(rf"({GH_ID})_(denoised\.mp4|denoised\.wav|times\.txt)")
RAVDESS_FILE = re.compile(r"Video_Song_Actor_(\d\d)/Actor_\1/(0[12])-02-(0[1-6])-(0[12])-(0[12])-(0[12])-\1\.mp4")
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
SMOKE = synth.SIZES["smoke"]
WRITERS = (synth.synth_greatest_hits, synth.synth_landscape, synth.synth_into_the_wild, synth.synth_ravdess)


def write_all(root: Path, seed: int = 0) -> Path:
    """All four smoke datasets, written concurrently (the datasets are independent) to keep the tests fast."""
    with ThreadPoolExecutor(len(WRITERS)) as ex:
        for f in [ex.submit(write, root, "smoke", seed, workers=1) for write in WRITERS]:
            f.result()
    return root


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def middle_frame_mean(path: Path) -> float:
    info = media.probe(path)
    return float(media.read_frames(path, [info.duration / 2])[0].mean())


def rms(path: Path) -> float:
    return float(np.sqrt(np.mean(np.square(media.read_audio(path, 16000)))))


def hits(times_txt: Path) -> list[tuple[float, str, str, str]]:
    rows = [line.split() for line in times_txt.read_text().splitlines()]
    assert all(len(r) == 4 for r in rows), times_txt
    return [(float(t), m, a, r) for t, m, a, r in rows]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_all(tmp_path_factory.mktemp("world"))


def test_api_and_sizes():
    assert set(synth.SIZES) == {"smoke", "demo", "rehearsal"}
    assert len(synth.LANDSCAPE_CLASSES) == 9 and len(synth.RAVDESS_EMOTIONS) == 6
    assert set(synth.GREATEST_HITS_MATERIALS) <= set(synth.GREATEST_HITS_NATIVE_MATERIALS)
    assert set(synth.LANDSCAPE_FOLDER_VARIANTS.values()) == set(synth.LANDSCAPE_CLASSES)
    assert "fire_crakling" in synth.LANDSCAPE_FOLDER_VARIANTS
    assert all(synth._BAD_RAVDESS_ACTOR not in size.ravdess_actors for size in synth.SIZES.values())
    with pytest.raises(ValueError, match="unknown synthetic size"):
        synth.synth_landscape(Path("unused"), "huge")


def test_greatest_hits_layout(world):
    root = world / "vis-data"
    names = {p.name for p in root.iterdir()}
    assert {"train.txt", "test.txt"} <= names
    ids = {GH_FILE.fullmatch(n)[1] for n in names - {"train.txt", "test.txt"}}
    assert len(ids) == SMOKE.gh_videos
    for vid in ids:
        assert {f"{vid}_denoised.mp4", f"{vid}_denoised.wav", f"{vid}_times.txt"} <= names
    train, test = ((root / f).read_text().split() for f in ("train.txt", "test.txt"))
    assert set(train) | set(test) == ids and not set(train) & set(test) and test
    mismatch = []
    for vid in ids:
        wav, info = sf.info(root / f"{vid}_denoised.wav"), media.probe(root / f"{vid}_denoised.mp4")
        assert wav.samplerate == 96_000 and wav.channels == 1
        assert info.has_video and info.has_audio and info.sample_rate == 48_000 and info.fps == 10
        assert (info.width, info.height) == (128, 128)
        mismatch.append(info.duration - wav.duration)
    assert max(mismatch) > 0.1  # some recordings' audio is shorter than their video, as in the real data


def test_times_txt(world):
    root = world / "vis-data"
    reactions = {"static", "rigid-motion", "deformation", "scatter", "splash"}
    materials, actions = set(), set()
    for path in root.glob("*_times.txt"):
        rows = hits(path)
        times = [t for t, *_ in rows]
        assert times == sorted(times) and times[0] >= 0
        assert times[-1] < sf.info(path.with_name(path.name.replace("_times.txt", "_denoised.wav"))).duration
        for _, material, action, reaction in rows:
            assert reaction in reactions
            materials.add(material)
            actions.add(action)
    assert set(SMOKE.gh_materials) <= materials <= {*SMOKE.gh_materials, "None"}
    assert {"hit", "scratch", "None"} >= actions >= {"hit", "None"}  # some actions are unlabelled


def test_greatest_hits_has_single_and_mixed_material_windows(world):
    single = mixed = 0
    for path in (world / "vis-data").glob("*_times.txt"):
        rows = hits(path)
        for start in range(int(rows[-1][0]) - 9):
            materials = {m for t, m, *_ in rows if start <= t < start + 10}
            single += len(materials) == 1 and "None" not in materials
            mixed += len(materials) > 1
    assert single > 0 and mixed > 0


def test_landscape_layout(world):
    root = world / "landscape"
    files = sorted(root.rglob("*.mp4"))
    assert len(files) == len(SMOKE.landscape_classes) * (SMOKE.landscape_train + SMOKE.landscape_test)
    folders = set()
    for path in files:
        split, folder, name = path.relative_to(root).parts
        assert split in ("train", "test") and folder in synth.LANDSCAPE_FOLDER_VARIANTS
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}\.mp4", name)
        info = media.probe(path)
        assert info.has_video and info.has_audio and info.sample_rate == 48_000
        assert 10 <= info.duration <= 30.1
        folders.add(folder)
    assert {synth.LANDSCAPE_FOLDER_VARIANTS[f] for f in folders} == set(SMOKE.landscape_classes)
    assert any(" " in f for f in folders) and any("_" in f for f in folders) and "fire_crakling" in folders


def test_into_the_wild_layout(world):
    root = world / "into_the_wild"
    meta = pd.read_excel(root / "metadata.xlsx")
    assert list(meta.columns) == ["ID", "Snow", "Forest", "Rain", "Duration"]
    assert sorted(meta["ID"]) == sorted(p.stem for p in root.glob("*.mp4"))
    for row in meta.itertuples():
        assert YOUTUBE_ID.fullmatch(row.ID)
        assert all(v == 1 or math.isnan(v) for v in (row.Snow, row.Forest, row.Rain))
        info = media.probe(root / f"{row.ID}.mp4")
        assert info.has_audio and abs(info.duration - row.Duration) < 0.2 and 20 <= row.Duration <= 40


def test_ravdess_layout_and_video_only_files_have_no_audio(world):
    root = world / "ravdess"
    files = [p.relative_to(root).as_posix() for p in root.rglob("*.mp4")]
    fields = [RAVDESS_FILE.fullmatch(f) for f in files]
    assert all(fields), files
    video_only = [f for f, m in zip(files, fields) if m[2] == "02"]
    assert len(video_only) == SMOKE.ravdess_video_only
    for f, m in zip(files, fields):
        info = media.probe(root / f)
        assert info.has_video and info.has_audio == (m[2] == "01")
        if info.has_audio:
            assert info.sample_rate == 48_000 and 4.0 <= info.duration <= 5.0
        assert not (m[3] == "01" and m[4] == "02")  # neutral has no strong intensity
        assert int(m[1]) in SMOKE.ravdess_actors


def test_same_seed_same_bytes_other_seed_differs(world, tmp_path):
    again = digests(write_all(tmp_path / "again"))
    assert again == digests(world)
    other = digests(synth.synth_ravdess(tmp_path / "other", "smoke", seed=1))
    first = digests(world / "ravdess")
    assert other.keys() == first.keys() and all(other[k] != first[k] for k in first)


def test_existing_dataset_is_not_overwritten(world):
    with pytest.raises(FileExistsError):
        synth.synth_into_the_wild(world, "smoke")


def test_louder_clip_is_brighter(world):
    """The loudness <-> brightness coupling, within each Landscape class and across RAVDESS intensities."""
    by_class = {}
    for path in (world / "landscape").rglob("*.mp4"):
        by_class.setdefault(synth.LANDSCAPE_FOLDER_VARIANTS[path.parent.name], []).append(path)
    for paths in by_class.values():
        ordered = sorted(paths, key=rms)
        brightness = [middle_frame_mean(p) for p in ordered]
        assert brightness == sorted(brightness) and brightness[0] < 0.9 * brightness[-1]
    root = world / "ravdess"
    for strong in root.rglob("01-02-0?-02-*.mp4"):
        normal = strong.with_name(strong.name[:9] + "01" + strong.name[11:])
        assert rms(strong) > rms(normal) and middle_frame_mean(strong) > middle_frame_mean(normal)


BAD_FOLDERS = {"greatest_hits": "vis-data", "landscape": "landscape", "ravdess": "ravdess"}


@pytest.fixture(scope="module")
def bad(world, tmp_path_factory) -> dict[str, tuple[Path, list[tuple[str, str]]]]:
    """Copies of three smoke datasets with the edge cases written into them (concurrently)."""
    tmp = tmp_path_factory.mktemp("bad")
    roots = {d: shutil.copytree(world / f, tmp / f) for d, f in BAD_FOLDERS.items()}
    with ThreadPoolExecutor(len(roots)) as ex:
        written = {d: ex.submit(synth.synth_bad_inputs, r, d, workers=1) for d, r in roots.items()}
        return {d: (roots[d], f.result()) for d, f in written.items()}


@pytest.mark.parametrize("dataset", BAD_FOLDERS)
def test_bad_inputs(bad, dataset):
    root, written = bad[dataset]
    kinds = {k: root / rel for rel, k in written}
    expected = set(synth.BAD_KINDS) - ({"odd_name"} if dataset == "greatest_hits" else set())
    assert set(kinds) == expected and len(written) == len(expected)
    assert kinds["zero_bytes"].stat().st_size == 0
    assert kinds["truncated"].stat().st_size > 0
    with pytest.raises(media.MediaError, match="not a readable media file"):  # its index (moov atom) is lost
        media.probe(kinds["truncated"])
    assert not media.probe(kinds["no_audio"]).has_audio and media.probe(kinds["no_audio"]).has_video
    assert np.abs(media.read_audio(kinds["silent"], 16000)).max() == 0
    assert media.probe(kinds["too_short"]).duration == pytest.approx(0.5 if dataset == "ravdess" else 1.0)
    if dataset == "landscape":
        odd = kinds["odd_name"]
        assert " " in odd.name and "'" in odd.name and not odd.name.isascii()
        assert odd.parent.name in synth.LANDSCAPE_FOLDER_VARIANTS and media.probe(odd).has_audio
    if dataset == "ravdess":
        odd = kinds.pop("odd_name").relative_to(root)
        assert " " in str(odd) and "'" in str(odd) and not str(odd).isascii() and media.probe(root / odd).has_audio
        assert all(RAVDESS_FILE.fullmatch(p.relative_to(root).as_posix()) for p in kinds.values())
    if dataset == "greatest_hits":
        listed = (root / "train.txt").read_text().split()
        for rel, kind in written:
            vid = GH_FILE.fullmatch(rel)[1]
            assert vid in listed and (root / f"{vid}_times.txt").exists()
            assert (root / f"{vid}_denoised.wav").exists() == (kind != "no_audio")


def test_bad_inputs_rejects_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="no bad inputs"):
        synth.synth_bad_inputs(tmp_path, "into_the_wild")


def test_rehearsal_size_writes_the_real_formats(tmp_path):
    """RAVDESS-like 1280x720 at 30 fps with 48 kHz AAC, Landscape 512x288 with 44.1 kHz stereo, Into the Wild at
    mixed resolutions with variable frame rate (workflow/configs/rehearsal.yaml)."""
    formats = synth.SIZES["rehearsal"]
    ravdess = synth.synth_ravdess(tmp_path, "rehearsal", seed=0, workers=2)
    info = media.probe(next(ravdess.rglob("01-02-*.mp4")))
    assert (info.width, info.height, info.video.fps) == (1280, 720, 30.0)
    assert (info.audio.sample_rate, info.audio.channels) == (48_000, 1)
    clip = tmp_path / "landscape.mp4"
    frames = np.full((20, 128, 128, 3), 90, np.uint8)
    formats.formats("landscape")[0].write(clip, frames, np.zeros(2 * synth.AV_RATE, np.float32))
    info = media.probe(clip)
    assert (info.width, info.height, info.audio.sample_rate, info.audio.channels) == (512, 288, 44_100, 2)
    itw = synth.synth_into_the_wild(tmp_path, "rehearsal", seed=0, workers=2)
    probes = [media.probe(p) for p in sorted(itw.glob("*.mp4"))]
    assert {(p.width, p.height) for p in probes} == {(1280, 720), (640, 360), (854, 480)}
    assert sum(p.video.variable_frame_rate for p in probes) == 2
    assert all(abs(p.duration - 20.0) < 0.2 for p in probes)  # dropping frames keeps the clip's length
