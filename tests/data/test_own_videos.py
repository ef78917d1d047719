"""The `folder` and `vggsound` formats (docs/own_videos.md) on real files made with ffmpeg: what is kept, with which
label and split, and what is a reject with which reason."""

import pandas as pd
import pytest

from sonic.config import ConfigError, from_dict
from sonic.data.datasets import (
    DatasetSpec, folder_has_labels, has_labels, index_dataset, read_vggsound_csv,
)
from sonic.data.extract import extract_videos
from sonic.data.manifest import SPLIT_MODES, build_manifest
from sonic.data.run import extract_settings
from tests.data import fixtures

CFG = from_dict({"profile": "test", "seed": 0, "models": {"sd": "none"},
                 "audio_encoder": {"embed_dim": 8, "sample_rate": 48000}, "data": {"datasets": {"x": {
                     "format": "folder", "root": "x"}}}})


def by_name(rejects):
    return {r.source.rsplit("/", 1)[-1]: r.reason for r in rejects}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    return {"folder": fixtures.own_folder(root), "unlabelled": fixtures.own_unlabelled(root),
            "vggsound": fixtures.own_vggsound(root)}


def extract(videos, fmt, out):
    return extract_videos(videos, extract_settings(CFG, fmt), out, progress=False)


def test_folder_labels_are_the_folder_names_as_written(layouts, tmp_path):
    root = layouts["folder"]
    assert folder_has_labels(root) and has_labels(DatasetSpec("mine", "folder", str(root)))
    videos, rejects = index_dataset(DatasetSpec("mine", "folder", str(root)))
    assert {v.video_id: v.label for v in videos} == {
        "Wind Noise/a": "Wind Noise", "Wind Noise/mute": "Wind Noise", "Wind Noise/short": "Wind Noise",
        "Wind Noise/broken": "Wind Noise",
        "Été à la plage/day 1/deeper/b": "Été à la plage", "Été à la plage/c": "Été à la plage",
        "Été à la plage/d": "Été à la plage"}
    assert all(v.native_split is None for v in videos)
    got = by_name(rejects)
    assert got["notes.txt"].startswith("not a video file")
    assert got["loose.mp4"].startswith("video directly under the root beside label folders")
    assert got["._a.mp4"] == "hidden file (name starting with '.')"
    assert got[".thumbnails"] == "hidden folder (name starting with '.'), not read"
    assert len(rejects) == 4

    rows, rejects = extract(videos, "folder", tmp_path / "out")
    clips = sorted((r["video_id"], r["start"], r["end"], r["label"]) for r in rows)
    assert clips == [
        ("Wind Noise/a", 0.0, 10.0, "Wind Noise"), ("Wind Noise/a", 10.0, 20.0, "Wind Noise"),
        ("Été à la plage/c", 0.0, 10.0, "Été à la plage"),
        ("Été à la plage/d", 0.0, 10.0, "Été à la plage"),
        ("Été à la plage/day 1/deeper/b", 0.0, 10.0, "Été à la plage")]
    assert all(r["clip_id"].isascii() for r in rows)
    got = by_name(rejects)
    assert got["mute.mp4"] == "no audio stream"
    assert got["short.mp4"].startswith("too short: 3.")
    assert "not a readable media file" in got["broken.mp4"]
    assert len(rejects) == 3


@pytest.mark.parametrize("mode", SPLIT_MODES)
def test_every_split_mode_applies_to_a_folder(layouts, tmp_path, mode):
    videos, _ = index_dataset(DatasetSpec("mine", "folder", str(layouts["folder"])))
    rows, _ = extract(videos, "folder", tmp_path / "out")
    lists = None
    if mode == "file":  # the authors' format: one entry per line, a clip id or a video's last component
        lists = {"train": tmp_path / "train.txt", "val": tmp_path / "val.txt"}
        lists["train"].write_text("a\nc\nb\n")
        lists["val"].write_text("d\n")
    manifest, split_rejects = build_manifest([pd.DataFrame(rows)], 0.3, 1, 0, mode=mode, split_files=lists)
    assert len(manifest) == 5 and set(manifest["split"]) <= {"train", "val"}
    if mode in ("video", "native", "file"):  # no video on both sides
        assert manifest.groupby("video_id")["split"].nunique().max() == 1
    if mode == "file":
        assert manifest.set_index("video_id")["split"].to_dict()["Été à la plage/d"] == "val"
        assert split_rejects.empty


def test_a_folder_without_labels(layouts, tmp_path):
    root = layouts["unlabelled"]
    spec = DatasetSpec("unl", "folder", str(root))
    assert not folder_has_labels(root) and not has_labels(spec)
    videos, rejects = index_dataset(spec)
    assert [(v.video_id, v.label) for v in videos] == [("x", None), ("y", None), ("z", None)] and not rejects
    rows, rejects = extract(videos, "folder", tmp_path / "out")
    assert len(rows) == 5 and not rejects and all(r["label"] is None for r in rows)
    manifest, _ = build_manifest([pd.DataFrame(rows)], 0.2, 1, 0, mode="video")
    assert manifest["label"].isna().all()
    assert manifest.groupby("video_id")["split"].nunique().max() == 1  # still split by video
    val = manifest[manifest["split"] == "val"]
    # one class: eval_audios_per_class 1 would give one image, and FID needs two
    assert manifest["eval"].sum() == min(2, len(val)) and len(val) >= 1


def test_vggsound_rows_files_labels_and_native_split(layouts, tmp_path):
    clips, table = layouts["vggsound"]
    rows, problems = read_vggsound_csv(table)
    assert (rows[0].youtube_id, rows[0].start, rows[0].label, rows[0].split) == (
        "-abcDEF_123", 30, "dog barking, growling", "train") and not problems
    spec = DatasetSpec("vgg", "vggsound", str(clips), csv=str(table))
    videos, rejects = index_dataset(spec)
    assert {v.video_id: (v.label, v.native_split) for v in videos} == {
        "-abcDEF_123_000030": ("dog barking, growling", "train"), "dog1_000010": ("dog barking, growling", "test"),
        "cat1_000000": ("cat meowing", "train"), "cat2_000000": ("cat meowing", "test"),
        "short_000005": ("cat meowing", "train"), "noau_000005": ("cat meowing", "test")}
    got = by_name(rejects)
    assert got["stray_000001.mp4"] == f"not listed in {table}"
    assert got["vggsound.csv:gone_000020"].startswith("line 7 (cat meowing, train): no file gone_000020.<mp4|")
    assert len(rejects) == 2

    rows, rejects = extract(videos, "vggsound", tmp_path / "out")
    assert sorted((r["video_id"], r["start"], r["end"]) for r in rows) == [
        ("-abcDEF_123_000030", 0.0, 10.0), ("cat1_000000", 0.0, 10.0), ("cat2_000000", 0.0, 10.0),
        ("dog1_000010", 0.0, 10.0)]
    got = by_name(rejects)
    assert got["noau_000005.mp4"] == "no audio stream"
    assert got["short_000005.mp4"] == "too short: 3.00 s < 9 s"
    manifest, _ = build_manifest([pd.DataFrame(rows)], 0.1, 1, 0, mode="native")
    assert manifest.set_index("video_id")["split"].to_dict() == {
        "-abcDEF_123_000030": "train", "dog1_000010": "val", "cat1_000000": "train", "cat2_000000": "val"}


def test_vggsound_labels_restrict_the_classes(layouts):
    clips, table = layouts["vggsound"]
    spec = DatasetSpec("vgg", "vggsound", str(clips), csv=str(table), labels=("cat meowing",))
    videos, rejects = index_dataset(spec)
    assert {v.label for v in videos} == {"cat meowing"} and len(videos) == 4
    got = by_name(rejects)
    assert got["dog1_000010.mp4"] == "label 'dog barking, growling' (line 2) is not among the dataset's labels"
    with pytest.raises(ConfigError, match=r"labels: 'dog barkng' is not a label of .*closest: 'dog barking, growling'"):
        index_dataset(DatasetSpec("vgg", "vggsound", str(clips), csv=str(table), labels=("dog barkng",)))


def test_malformed_vggsound_rows_are_rejects_naming_the_line(tmp_path):
    table = tmp_path / "vggsound.csv"
    table.write_text('a,1,"x",train\nb,one,x,train\nc,2,x,validation\nd,3\n\n')
    rows, problems = read_vggsound_csv(table)
    assert [r.youtube_id for r in rows] == ["a"]
    assert problems == ["line 2: start second 'one' is not a whole number of seconds",
                        "line 3: split 'validation' is neither of ['train', 'test']",
                        "line 4: expected 4 fields (YouTube id, start second, label, train/test), got 2: 'd,3'"]
