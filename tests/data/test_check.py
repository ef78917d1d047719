"""`sonic data check` on real files made with ffmpeg: counts per label, every unusable file with its reason, the
split's sizes; exit 0 when something usable is there, 1 naming the root otherwise."""

import pytest
import yaml

from sonic.cli import main
from tests.data import fixtures


def config(path, datasets, **data):
    cfg = {"profile": "test", "seed": 0, "models": {"sd": "none"},
           "audio_encoder": {"embed_dim": 8, "sample_rate": 48000},
           "data": {"datasets": datasets, "val_fraction": 0.3, "eval_audios_per_class": 1, **data}}
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return str(path)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    clips, table = fixtures.own_vggsound(root)
    empty = root / "nothing usable"
    fixtures.video(empty / "birds" / "short.mp4", 4)
    (empty / "birds" / "notes.txt").write_text("x")
    return config(root / "config.yaml", {
        "mine": {"format": "folder", "root": str(fixtures.own_folder(root))},
        "unl": {"format": "folder", "root": str(fixtures.own_unlabelled(root))},
        "vgg": {"format": "vggsound", "root": str(clips), "csv": str(table), "labels": None},
        "empty": {"format": "folder", "root": str(empty)},
    })


def check(cfg, dataset, capsys, *more):
    code = main(["data", "check", "--config", cfg, "--dataset", dataset, *more])
    out = capsys.readouterr()
    return code, out.out, out.err


def row(text, label):
    """The numbers of a label's line of the per-label table."""
    line = next(line for line in text.splitlines() if line.startswith(label + " "))
    return line[len(label):].split()


def test_folder(cfg, capsys, tmp_path):
    code, out, _ = check(cfg, "mine", capsys, "--out", str(tmp_path / "check.txt"))
    assert code == 0
    assert row(out, "Wind Noise") == ["1", "21.0", "s", "2"]  # videos, duration, clips
    assert row(out, "Été à la plage") == ["3", "33.5", "s", "3"]
    assert row(out, "total") == ["4", "54.5", "s", "5"]
    assert "not usable: 7 (no audio 1, not used 4, too short 1, unreadable 1)" in out
    assert "mute.mp4: no audio stream" in out and "short.mp4: too short: 3." in out
    assert "broken.mp4: not a readable media file" in out and "notes.txt: not a video file" in out
    assert "loose.mp4: video directly under the root beside label folders" in out
    # Wind Noise has one usable video, which stays in train
    assert "split (video): train 4 clips from 3 videos, val 1 clips from 1 videos; 1 evaluation clips" in out
    assert "warning: only 1 validation clip(s): the evaluation needs at least 2" in out
    assert "OK: 5 clips from 4 videos (2 labels) would be extracted" in out
    assert (tmp_path / "check.txt").read_text() == out


def test_unlabelled_folder(cfg, capsys):
    code, out, _ = check(cfg, "unl", capsys)
    assert code == 0
    assert row(out, "(no label)") == ["3", "54.0", "s", "5"]
    assert "OK: 5 clips from 3 videos (no labels) would be extracted" in out


def test_vggsound(cfg, capsys):
    code, out, _ = check(cfg, "vgg", capsys)
    assert code == 0
    assert row(out, "dog barking, growling") == ["2", "20.0", "s", "2"]
    assert row(out, "cat meowing") == ["2", "20.0", "s", "2"]
    assert "not usable: 4 (missing 1, no audio 1, not used 1, too short 1)" in out
    assert "vggsound.csv:gone_000020: line 7 (cat meowing, train): no file gone_000020.<mp4|" in out
    assert "stray_000001.mp4: not listed in" in out and "noau_000005.mp4: no audio stream" in out
    assert "short_000005.mp4: too short: 3.00 s < 9 s" in out
    assert "OK: 4 clips from 4 videos (2 labels) would be extracted" in out


def test_native_split_sizes(tmp_path, capsys):
    clips, table = fixtures.own_vggsound(tmp_path)
    cfg = config(tmp_path / "c.yaml", {"vgg": {"format": "vggsound", "root": str(clips), "csv": str(table)}},
                 split="native")
    code, out, _ = check(cfg, "vgg", capsys)
    assert code == 0 and "split (native): train 2 clips from 2 videos, val 2 clips from 2 videos" in out


def test_nothing_usable_exits_1_naming_the_root(cfg, capsys):
    code, out, _ = check(cfg, "empty", capsys)
    assert code == 1
    assert "short.mp4: too short: 4." in out and "notes.txt: not a video file" in out
    root = yaml.safe_load(open(cfg))["data"]["datasets"]["empty"]["root"]
    assert f"not usable: no usable video under {root}" in out


def test_a_missing_root_is_named(tmp_path, capsys):
    cfg = config(tmp_path / "c.yaml", {"gone": {"format": "folder", "root": str(tmp_path / "no such folder")}})
    code, out, _ = check(cfg, "gone", capsys)
    assert code == 1 and f"not usable: gone: dataset root {tmp_path / 'no such folder'} is not a folder" in out
