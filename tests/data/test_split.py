"""The train/val split modes of the manifest (sonic/data/manifest.py), on constructed clip tables."""

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sonic import config as config_mod
from sonic.data.manifest import assign_splits, build_manifest, split_clips
from sonic.data.tables import CLIP_COLUMNS, REJECT_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def table(videos: dict[str, tuple[str, int]], native: dict[str, str] | None = None) -> pd.DataFrame:
    """Clips of ``videos`` (video id -> (label, number of 10 s windows)), ids ``<video>_<start>``."""
    rows = []
    for video, (label, n) in videos.items():
        for k in range(n):
            rows.append({
                "clip_id": f"{video.replace('/', '__')}_{10 * k:05d}", "dataset": "d", "video_id": video,
                "source": f"{video}.mp4", "start": 10.0 * k, "end": 10.0 * k + 10, "label": label,
                "frame": "", "audio": "", "native_split": (native or {}).get(video), "meta": "{}",
            })
    return pd.DataFrame(rows, columns=CLIP_COLUMNS)


def world() -> pd.DataFrame:
    """Three labels of 12-30 videos with 1-9 windows each (sizes fixed by a formula, not random)."""
    videos = {}
    for label, count in (("rain", 30), ("fire", 17), ("wind", 12)):
        for i in range(count):
            videos[f"{label}/v{i:02d}"] = (label, 1 + (7 * i + len(label)) % 9)
    return table(videos)


def split(clips, mode="video", val_fraction=0.1, eval_per_class=5, seed=0, split_files=None):
    return split_clips(clips, mode, val_fraction, eval_per_class, seed, split_files)


def sides(manifest: pd.DataFrame) -> pd.Series:
    return manifest.groupby("video_id")["split"].nunique()


@pytest.mark.parametrize("val_fraction", [0.1, 0.25])
def test_video_split_keeps_videos_whole_and_is_stratified(val_fraction):
    clips = world()
    manifest, rejects = split(clips, val_fraction=val_fraction)
    assert rejects.empty and list(rejects.columns) == REJECT_COLUMNS
    assert (sides(manifest) == 1).all()
    assert set(manifest["split"]) == {"train", "val"}
    for label, group in manifest.groupby("label"):
        target = val_fraction * len(group)
        largest = group.groupby("video_id").size().max()
        n_val = (group["split"] == "val").sum()
        assert abs(n_val - target) <= largest, (label, n_val, target)
        assert 1 <= group.loc[group["split"] == "val", "video_id"].nunique() < group["video_id"].nunique()


def test_video_split_is_deterministic_and_order_independent():
    clips = world()
    manifest, _ = split(clips)
    again, _ = split(clips.sample(frac=1, random_state=7).reset_index(drop=True))
    assert again.reset_index(drop=True).equals(manifest.reset_index(drop=True))
    assert list(manifest["clip_id"]) == sorted(manifest["clip_id"])
    other, _ = split(clips, seed=1)
    assert (sides(other) == 1).all()
    val_videos = lambda m: set(m.loc[m["split"] == "val", "video_id"])  # noqa: E731
    assert val_videos(other) != val_videos(manifest)


def test_video_split_small_labels():
    clips = table({"a/1": ("a", 5), "a/2": ("a", 5), "b/1": ("b", 3), "c/1": ("c", 2), "c/2": ("c", 40)})
    manifest, _ = split(clips, val_fraction=0.1, eval_per_class=2)
    by_video = manifest.groupby("video_id")["split"].first().to_dict()
    # a: 10 clips, target 1, no video brings val closer: one is forced into val; b: one video stays in train;
    # c: the 2-clip video is the closer to the target of 4.2.
    assert sorted(by_video[v] for v in ("a/1", "a/2")) == ["train", "val"]
    assert by_video["b/1"] == "train"
    assert (by_video["c/1"], by_video["c/2"]) == ("val", "train")
    assert not split(clips, val_fraction=0.0)[0]["split"].eq("val").any()


def test_video_split_multi_label_videos_go_whole():
    # Greatest Hits: labels per window; each video counts as its most frequent label.
    rows = []
    for i in range(20):
        labels = ["wood"] * (3 + i % 4) + ["metal"] * (i % 3) + (["rock"] if i % 5 == 0 else [])
        for k, label in enumerate(labels):
            rows.append(table({f"gh{i:02d}": (label, 1)}).assign(clip_id=f"gh{i:02d}_{k:05d}", start=10.0 * k))
    clips = pd.concat(rows, ignore_index=True)
    manifest, _ = split(clips, val_fraction=0.2)
    assert (sides(manifest) == 1).all()
    assert 1 <= manifest.loc[manifest["split"] == "val", "video_id"].nunique() < 20


def test_eval_clips_come_from_many_videos():
    clips = table({f"v{i}": ("rain", 6) for i in range(40)})
    manifest, _ = split(clips, val_fraction=0.1, eval_per_class=3)
    val = manifest[manifest["split"] == "val"]
    assert val["video_id"].nunique() == 4
    chosen = manifest[manifest["eval"]]
    assert len(chosen) == 3 and chosen["video_id"].nunique() == 3 and (chosen["split"] == "val").all()
    # More eval clips than val videos: round-robin, so each val video gives one or two.
    wide, _ = split(clips, val_fraction=0.1, eval_per_class=6)
    assert wide.loc[wide["eval"], "video_id"].value_counts().tolist() == [2, 2, 1, 1]
    shuffled, _ = split(clips.sample(frac=1, random_state=1), val_fraction=0.1, eval_per_class=6)
    assert shuffled.reset_index(drop=True).equals(wide.reset_index(drop=True))


def test_native_split(caplog):
    videos = {f"rain/v{i}": ("rain", 3) for i in range(6)} | {f"wild/w{i}": ("forest", 2) for i in range(10)}
    native = {f"rain/v{i}": ("test" if i < 2 else "train") for i in range(6)}
    clips = table(videos, native)
    with caplog.at_level(logging.INFO, logger="sonic.data.manifest"):
        manifest, _ = split(clips, mode="native", val_fraction=0.2)
    rain = manifest[manifest["label"] == "rain"].groupby("video_id")["split"].first().to_dict()
    assert rain == {f"rain/v{i}": ("val" if i < 2 else "train") for i in range(6)}
    wild = manifest[manifest["label"] == "forest"]
    assert (sides(wild) == 1).all() and set(wild["split"]) == {"train", "val"}
    assert "20 clips of 10 videos have no native split" in caplog.text
    with pytest.raises(ValueError, match="native_split"):
        split(clips.assign(native_split="holdout"), mode="native")


def authors_lists(tmp_path, train: list[str], val: list[str]) -> dict:
    files = {"train": tmp_path / "audio_train_landscape.txt", "val": tmp_path / "audio_val_landscape.txt"}
    files["train"].write_text("".join(f"landscape-audios/{s}.wav\n" for s in train))
    files["val"].write_text("\n".join(f"landscape-audios/{s}.wav" for s in val) + "\n\n")
    return {k: str(v) for k, v in files.items()}


def test_file_split_in_the_authors_format(tmp_path, caplog):
    clips = table({"train/rain/0012": ("rain", 3), "train/rain/0588": ("rain", 2), "test/fire/0102": ("fire", 2),
                   "into_the_wild/abc": ("forest", 2), "train/fire/0783": ("fire", 1)})
    # <video>_<index> stems naming videos, a whole clip id, a video's last component; one line matches nothing.
    files = authors_lists(tmp_path, train=["0012_3889", "0012_4244", "into_the_wild__abc_00000", "9999_1"],
                          val=["0588_220", "0102"])
    with caplog.at_level(logging.WARNING, logger="sonic.data.manifest"):
        manifest, rejects = split(clips, mode="file", split_files=files, eval_per_class=1)
    got = manifest.set_index("clip_id")["split"].to_dict()
    assert got == {
        "train__rain__0012_00000": "train", "train__rain__0012_00010": "train", "train__rain__0012_00020": "train",
        "train__rain__0588_00000": "val", "train__rain__0588_00010": "val",
        "test__fire__0102_00000": "val", "test__fire__0102_00010": "val",
        "into_the_wild__abc_00000": "train", "into_the_wild__abc_00010": "unused",
        "train__fire__0783_00000": "unused",
    }
    assert manifest.groupby("label")["eval"].sum().to_dict() == {"fire": 1, "forest": 0, "rain": 1}
    assert list(rejects.columns) == REJECT_COLUMNS and len(rejects) == 2
    assert set(rejects["source"]) == {"into_the_wild/abc.mp4@10.0-20.0s", "train/fire/0783.mp4@0.0-10.0s"}
    assert (rejects["stage"] == "split").all()
    assert (rejects["reason"] == f"not in the split lists {files['train']}, {files['val']}").all()
    assert "1 of 4 entries name no clip or video" in caplog.text and "9999_1" in caplog.text


def test_file_split_clip_in_both_lists_is_an_error(tmp_path):
    clips = table({"train/rain/0012": ("rain", 2)})
    files = authors_lists(tmp_path, train=["0012_1"], val=["train__rain__0012_00010"])
    with pytest.raises(ValueError, match="train__rain__0012_00010") as err:
        split(clips, mode="file", split_files=files)
    assert files["train"] in str(err.value) and files["val"] in str(err.value)


def test_build_manifest_passes_the_split_rejects(tmp_path):
    clips = table({"train/rain/0012": ("rain", 2), "train/rain/0013": ("rain", 1)})
    files = authors_lists(tmp_path, train=["0012_1"], val=[])
    manifest, rejects = build_manifest([clips.iloc[:1], clips.iloc[1:]], 0.1, 5, 0, mode="file", split_files=files)
    assert manifest["split"].tolist() == ["train", "train", "unused"] and len(rejects) == 1
    with pytest.raises(ValueError, match="unknown split mode"):
        build_manifest([clips], 0.1, 5, 0, mode="random")


def test_clip_mode_is_the_old_split():
    # Expected output computed with the per-clip split before the split modes existed.
    clips = pd.DataFrame({c: [""] * 20 for c in CLIP_COLUMNS})
    clips["clip_id"] = [f"c{i:02d}" for i in range(20)]
    clips["video_id"] = [f"v{i // 3}" for i in range(20)]
    clips["label"] = ["a"] * 12 + ["b"] * 7 + ["c"]
    manifest, rejects = split(clips, mode="clip", val_fraction=0.25, eval_per_class=2)
    assert rejects.empty
    assert "".join("v" if s == "val" else "t" for s in manifest["split"]) == "vtttvtttvttttttvttvt"
    assert "".join("e" if e else "." for e in manifest["eval"]) == "e.......e......e..e."
    assert manifest.equals(assign_splits(clips, 0.25, 2, seed=0))
    assert (sides(manifest) > 1).any()  # leaky: v0 has clips on both sides


def test_config_split_modes(tmp_path):
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config_mod.from_dict(data).data.split == "video"
    data["data"]["split"] = "file"
    with pytest.raises(config_mod.ConfigError, match="data.datasets.greatest_hits has no split_files"):
        config_mod.from_dict(data)
    for name, spec in data["data"]["datasets"].items():
        spec["split_files"] = {"train": f"{name}_train.txt", "val": f"{name}_val.txt"}
    cfg = config_mod.from_dict(data)
    assert cfg.data.split_files("landscape") == {"train": "landscape_train.txt", "val": "landscape_val.txt"}
    data["data"]["split"] = "random"
    with pytest.raises(config_mod.ConfigError, match="data.split"):
        config_mod.from_dict(data)
