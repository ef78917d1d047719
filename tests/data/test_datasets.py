"""Dataset adapters and extraction on hand-made native layouts with known contents."""

import json

import numpy as np
import pandas as pd
from PIL import Image

from sonic.data.datasets import (
    DatasetSpec, index_dataset, landscape_class, parse_ravdess_name, unknown_class_reason,
)
from sonic.data.extract import ExtractSettings, extract_videos
from tests.data import fixtures


def reasons(rejects):
    return {(r.source.rsplit("/", 1)[-1], r.reason) for r in rejects}


def test_greatest_hits_index_and_single_material_filter(tmp_path):
    vis = fixtures.greatest_hits(tmp_path)
    videos, rejects = index_dataset(DatasetSpec("gh", "greatest_hits", str(vis)))
    assert [v.video_id for v in videos] == ["2015-02-16-16-49-06", "2015-03-01-10-00-00-1"]
    assert [v.native_split for v in videos] == ["train", "test"]
    assert videos[0].audio.endswith("_denoised.wav") and videos[1].audio is None
    got = reasons(rejects)
    assert ("notes.md", "unrecognised file name for Greatest Hits") in got
    assert ("2015-04-01-00-00-00_denoised.mp4", "empty file (0 bytes)") in got
    assert any("2016-01-01-00-00-00" in s and "listed in test.txt" in r for s, r in got)

    rows, rejects = extract_videos(videos, ExtractSettings(consecutive_material=True), tmp_path / "out", progress=False)
    assert [(r["clip_id"], r["label"], r["start"], r["end"]) for r in rows] == [
        ("2015-02-16-16-49-06_00000", "wood", 0.0, 10.0)]
    assert json.loads(rows[0]["meta"])["hits"] == 3
    got = {r.reason for r in rejects}
    assert "mixed materials in the window: metal, wood" in got
    assert "a hit with material None in the window" in got
    # the 25 s video has 24.6 s of audio: two windows, the second mixed; no third window
    assert sum("2015-02-16-16-49-06" in r.source for r in rejects) == 1


def test_landscape_and_into_the_wild(tmp_path):
    land, wild = fixtures.landscape(tmp_path)
    spec = DatasetSpec("landscape", "landscape", str(land), str(wild))
    videos, rejects = index_dataset(spec)
    labels = {v.video_id: v.label for v in videos}
    assert labels["train/fire_crakling/f1"] == "fire crackling"
    assert labels["train/Wind Noise/été 'windy' clip"] == "wind noise"
    assert labels["into_the_wild/AbCdEfGhIjK"] == "forest+rain"
    got = reasons(rejects)
    assert ("c1.mp4", "unknown class folder 'cats' (add it to the dataset's aliases in the config)") in got
    assert ("readme.txt", "not an .mp4 video") in got
    assert ("unlisted_id.mp4", "not listed in metadata.xlsx") in got
    assert ("metadata.xlsx:MissingVid1", "listed in metadata.xlsx but MissingVid1.mp4 is missing") in got

    rows, rejects = extract_videos(videos, ExtractSettings(), tmp_path / "out", progress=False)
    spans = sorted((r["video_id"], r["start"], r["end"], r["label"]) for r in rows)
    assert spans == [
        ("into_the_wild/AbCdEfGhIjK", 0.0, 10.0, "forest+rain"),
        ("into_the_wild/AbCdEfGhIjK", 10.0, 20.0, "forest+rain"),
        ("train/Wind Noise/été 'windy' clip", 0.0, 10.0, "wind noise"),
        ("train/fire_crakling/f1", 0.0, 10.0, "fire crackling"),
        ("train/fire_crakling/f1", 10.0, 20.0, "fire crackling"),
    ]
    got = {(r.source.rsplit("/", 1)[-1], r.reason.split(" (")[0].split(":")[0]) for r in rejects}
    assert ("r1.mp4", "no audio stream") in got
    assert ("short.mp4", "too short") in got
    assert ("silent.mp4@0.0-10.0s", "silent audio") in got
    odd = next(r for r in rows if "windy" in r["video_id"])
    assert Image.open(odd["frame"]).size == (32, 32) and np.asarray(Image.open(odd["frame"])).mean() > 150
    assert odd["frame"].isascii() and odd["audio"].isascii()


def test_ravdess(tmp_path):
    base = fixtures.ravdess(tmp_path)
    videos, rejects = index_dataset(DatasetSpec("ravdess", "ravdess", str(base)))
    assert {v.video_id: v.label for v in videos} == {
        "01-02-03-02-01-01-01": "happy", "01-02-04-01-02-01-01": "sad", "01-02-05-01-01-01-01": "angry"}
    assert videos[0].meta["intensity"] == 2 and videos[0].meta["actor"] == 1
    got = reasons(rejects)
    assert ("02-02-03-02-01-01-01.mp4", "modality 02 (video only): no audio stream") in got
    assert ("01-01-03-01-01-01-01.mp4", "vocal channel 01 is not song (02)") in got
    assert ("01-02-08-01-01-01-01.mp4", "emotion 08 is not defined for song (01-06)") in got
    assert ("not a ravdess name.mp4", "file name does not follow MM-VV-EE-II-SS-RR-AA") in got
    rows, rejects = extract_videos(videos, ExtractSettings(whole_file=True, min_seconds=1.0), tmp_path / "o",
                                   progress=False)
    assert sorted(r["clip_id"] for r in rows) == ["01-02-03-02-01-01-01", "01-02-04-01-02-01-01"]
    assert all(r["start"] == 0.0 and abs(r["end"] - 2.0) < 0.05 for r in rows)
    assert [r.reason.split(":")[0] for r in rejects] == ["too short"]


def test_corrupt_file_is_rejected_and_the_rest_goes_on(tmp_path):
    land, _ = fixtures.landscape(tmp_path)
    good = land / "train" / "fire_crakling" / "f1.mp4"
    bad = land / "train" / "fire_crakling" / "truncated.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    videos, _ = index_dataset(DatasetSpec("landscape", "landscape", str(land)))
    rows, rejects = extract_videos(videos, ExtractSettings(), tmp_path / "out", progress=False)
    # Cut with its index intact at the front: it probes fine and decodes partially without an error code.
    reason = next(r.reason for r in rejects if r.source.endswith("truncated.mp4"))
    assert "truncated or corrupt" in reason or "ffmpeg failed" in reason, reason
    assert {r["video_id"] for r in rows} >= {"train/fire_crakling/f1"}


def test_name_helpers():
    assert landscape_class("Fire_Crakling", {}) == "fire crackling"
    assert landscape_class("waterfall-burbling", {}) == "waterfall burbling"
    assert landscape_class("brook", {"brook": "waterfall burbling"}) == "waterfall burbling"
    assert landscape_class("cats", {}) is None
    assert parse_ravdess_name("01-02-03-02-01-01-07")["actor"] == 7
    assert parse_ravdess_name("01-02-03") is None


def test_manifest_split_is_stratified_and_deterministic():
    from sonic.data.manifest import assign_splits

    clips = pd.DataFrame({"clip_id": [f"c{i:03d}" for i in range(60)], "label": ["a"] * 40 + ["b"] * 19 + ["c"]})
    for col in ("dataset", "video_id", "source", "start", "end", "frame", "audio", "native_split", "meta"):
        clips[col] = ""
    out = assign_splits(clips, 0.1, 2, seed=0)
    counts = out.groupby(["label", "split"]).size().to_dict()
    assert counts == {("a", "train"): 36, ("a", "val"): 4, ("b", "train"): 17, ("b", "val"): 2, ("c", "train"): 1}
    assert out.groupby("label")["eval"].sum().to_dict() == {"a": 2, "b": 2, "c": 0}
    assert not (out["eval"] & (out["split"] == "train")).any()
    again = assign_splits(clips.sample(frac=1, random_state=3), 0.1, 2, seed=0)
    assert again.reset_index(drop=True).equals(out.reset_index(drop=True))
    assert not assign_splits(clips, 0.1, 2, seed=1)["split"].equals(out["split"])


def test_unknown_landscape_folder_names_the_closest_class():
    assert unknown_class_reason("waterfall_bubbling", {}) == (
        "unknown class folder 'waterfall_bubbling' (did you mean 'waterfall burbling'? add it to the dataset's "
        "aliases in the config)")
    assert "did you mean 'fire crackling'?" in unknown_class_reason("Fire-Crackle", {})
    assert "did you mean" not in unknown_class_reason("cats", {})
    # a configured alias counts as a known name, and points at its class
    assert "did you mean 'thunder'?" in unknown_class_reason("thunderstorms", {"thunderstorm": "thunder"})
