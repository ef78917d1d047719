"""Miniature FID network (docs/pretrained-models.md; sonic/demo/pretrain/fid.py): it trains on frames,
saves a strict folder that FidNetFeatures loads, gives deterministic features that separate classes, and the same
seed gives the same weights."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sonic.demo.pretrain.fid import FidNetSettings, augment, greyscale, train_fidnet
from sonic.metrics.fid import FidNetFeatures
from tests.tiny import COLOURS, square_pairs

TINY = FidNetSettings(steps=40, batch_size=6, warmup_steps=2, shift=2, image_size=16, widths=(8, 16), eval_batch=4)


@pytest.fixture(scope="module")
def trained(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    train, val = square_pairs(root / "frames"), square_pairs(root / "frames", 1, "val", seed=1)
    runs = [train_fidnet(train, val, root / f"run{k}", TINY) for k in range(2)]
    return root, runs


def square(colour, x: int, y: int) -> torch.Tensor:
    """A 32x32 frame as square_pairs draws them: a 16-pixel square of ``colour`` at (x, y) on grey, in [0, 1]."""
    img = np.full((32, 32, 3), 90, np.uint8)
    img[y:y + 16, x:x + 16] = colour
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255


def test_it_trains_saves_and_reports(trained):
    root, (quality, _) = trained
    assert {p.name for p in (root / "run0").iterdir()} == {"config.json", "model.safetensors", "quality.json"}
    config = json.loads((root / "run0" / "config.json").read_text())
    assert config["format"] == "sonic-fidnet" and config["classes"] == [f"toy/{c}" for c in sorted(COLOURS)]
    assert config["architecture"] == {"image_size": 16, "widths": [8, 16], "num_classes": 3}
    assert json.loads((root / "run0" / "quality.json").read_text()) == quality
    assert quality["val_accuracy"]["overall"] == 1.0  # three colours: an easy task, learnt
    assert quality["parameters"] == sum(v.numel() for k, v in load_file(root / "run0" / "model.safetensors").items()
                                        if "running" not in k and "num_batches" not in k)
    assert quality["num_features"] == 16 and quality["train_wall_seconds"] > 0
    check = quality["fid_check"]["toy"]  # FID on its features: frames like the val frames vs colour fields
    assert 0 <= check["train_vs_val"] < check["colour_fields_vs_val"], check


def test_features_have_the_right_shape_are_deterministic_and_separate_classes(trained):
    root, _ = trained
    features = FidNetFeatures(str(root / "run0"))
    assert features.num_features == 16 and not features.net.training
    red = COLOURS["red"]
    images = torch.stack([square(red, 2, 3), square(red, 14, 12), square(COLOURS["blue"], 2, 3)])  # (3, 3, 32, 32)
    a, b = features(images), features(images)  # 32 px: resized to the network's 16
    assert a.shape == (3, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.allclose(features(images[:1]), a[:1], atol=1e-5)  # per image: BatchNorm uses running statistics
    same, different = (a[0] - a[1]).norm(), (a[0] - a[2]).norm()
    assert different > 2 * same, (same, different)
    features.train()  # what torchmetrics may do to its children: the network stays in eval mode
    assert not features.net.training and torch.equal(features(images), a)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        features(images[:, :1])


def test_same_seed_same_weights_other_seed_other_weights(trained, tmp_path):
    root, (q0, q1) = trained
    a, b = load_file(root / "run0" / "model.safetensors"), load_file(root / "run1" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert q0["val_accuracy"] == q1["val_accuracy"] and q0["final_loss"] == q1["final_loss"]
    train = square_pairs(root / "frames")
    train_fidnet(train, [], tmp_path / "seed1", replace(TINY, seed=1, steps=3))
    c = load_file(tmp_path / "seed1" / "model.safetensors")
    assert not torch.equal(a["stem.conv.weight"], c["stem.conv.weight"])


def test_augmentation_is_seeded_and_keeps_shapes():
    images = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    one = augment(images, 3, 0.5, torch.Generator().manual_seed(1))
    assert one.shape == images.shape and torch.equal(one, augment(images, 3, 0.5, torch.Generator().manual_seed(1)))
    plain = augment(images, 0, 0.0, torch.Generator().manual_seed(1))  # no shift, no grey: as it was or mirrored
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(plain, images, strict=True))
    grey = augment(images, 0, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert torch.allclose(greyscale(torch.ones(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))


def test_one_class_is_an_error(tmp_path):
    pairs = [p for p in square_pairs(tmp_path / "frames") if p.label == "red"]
    with pytest.raises(ValueError, match="at least 2 classes"):
        train_fidnet(pairs, [], tmp_path / "out", TINY)


def test_strict_loading(trained, tmp_path):
    from safetensors.torch import save_file

    from tests.tiny import write_clip_folder

    root, _ = trained
    with pytest.raises(ValueError, match="sonic-fidnet"):
        FidNetFeatures(str(write_clip_folder(tmp_path / "clip")))  # a CLIP folder is not a FID network
    with pytest.raises(FileNotFoundError, match="no config.json"):
        FidNetFeatures(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((root / "run0" / "config.json").read_text())
    tensors = load_file(root / "run0" / "model.safetensors")
    tensors.pop("head.bias")
    save_file(tensors, broken / "model.safetensors")
    with pytest.raises(ValueError, match="missing.*head.bias"):
        FidNetFeatures(str(broken))



def test_sonic_pretrain_fid_reads_manifests(tmp_path, capsys):
    """What the train_fid rule runs: `sonic pretrain fid --settings ... --manifests ... --out ...`."""
    from sonic.cli import main

    pairs = square_pairs(tmp_path / "frames", 2) + square_pairs(tmp_path / "frames", 1, "val", seed=1)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(["clip_id,dataset,label,frame,audio,split"] + [
        f"{p.clip_id},toy,{p.label},{p.frame},,{p.split}" for p in pairs]) + "\n")
    settings = json.dumps({"seed": 3, "pretrain": {"steps": {"fid": 2}, "fid": {"batch_size": 8}}})  # the recipe
    assert main(["pretrain", "fid", "--settings", settings, "--manifests", str(manifest), "--out",
                 str(tmp_path / "fid"), "--threads", "1"]) == 0
    quality = json.loads((tmp_path / "fid" / "quality.json").read_text())
    assert quality["steps"] == 2 and quality["n_train"] == {"toy": 6} and quality["n_val"] == {"toy": 3}
    assert quality["settings"]["batch_size"] == 8 and quality["settings"]["seed"] == 3  # pretrain.fid, the seed
    assert FidNetFeatures(str(tmp_path / "fid"))(torch.rand(2, 3, 64, 64)).shape == (2, 128)  # the demo network
