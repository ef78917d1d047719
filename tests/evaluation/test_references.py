"""Evaluation inputs at the evaluation size: frames resized on the shorter side and centre-cropped (never
squashed), references of frames of any size computed in batches (issue: real media)."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from sonic import config as config_mod
from sonic.errors import InputError
from sonic.images import image_batches, load_image, load_images
from tests.tiny import tiny_config_dict, write_clip_folder, write_fid_folder


def stripes(path, width: int, height: int):
    """Vertical stripes: column x has grey level 4 * (x * 60 // width) — position across the image is visible."""
    cols = (np.arange(width) * 60 // width * 4).astype(np.uint8)
    Image.fromarray(np.broadcast_to(cols[None, :, None], (height, width, 3)).copy()).save(path)
    return path


def test_load_image_resizes_the_shorter_side_and_centre_crops(tmp_path):
    wide = load_image(stripes(tmp_path / "wide.png", 240, 60), 30)  # 240x60 -> 120x30 -> centre 30x30
    assert wide.shape == (30, 30, 3)
    # the crop covers the middle quarter of the width: stripes 22..37 of 60, not the whole range (squashing)
    levels = sorted(set(np.round(wide[15, :, 0] * 255 / 4).astype(int)))
    assert 21 <= levels[0] and levels[-1] <= 38
    tall = load_image(stripes(tmp_path / "tall.png", 40, 160), 20)  # portrait: width is the shorter side
    assert tall.shape == (20, 20, 3)
    assert np.round(tall[10, :, 0] * 255 / 4).min() <= 2 and np.round(tall[10, :, 0] * 255 / 4).max() >= 56
    same = load_image(stripes(tmp_path / "sq.png", 20, 20), 20)
    assert np.array_equal(same, load_image(tmp_path / "sq.png"))  # already at size: untouched
    with pytest.raises(ValueError, match="differ in size"):
        load_images([tmp_path / "wide.png", tmp_path / "tall.png"])
    batches = list(image_batches([tmp_path / "wide.png", tmp_path / "tall.png", tmp_path / "sq.png"], 16, 2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 16, 16), (1, 3, 16, 16)]
    with pytest.raises(InputError, match="broken.png: cannot read the image"):
        (tmp_path / "broken.png").write_bytes(b"not a png")
        load_image(tmp_path / "broken.png", 16)


def test_references_of_frames_of_different_sizes_in_batches(tmp_path):
    from sonic.metrics.clip_scores import image_features
    from safetensors.torch import load_file, save_file

    from sonic.evaluation.references import compute_references, load_references
    from sonic.metrics.shape import ShapeClassifier
    from sonic.models.wav2clip import Wav2Clip, Wav2ClipConfig, save_wav2clip
    from sonic.models.registry import load_clip

    clip = write_clip_folder(tmp_path / "clip")
    torch.manual_seed(0)
    save_wav2clip(Wav2Clip(Wav2ClipConfig(base_width=8, blocks=(1, 1, 1, 1), mlp_hidden=32, embed_dim=16)).eval(),
                  tmp_path / "Wav2CLIP.pt")
    data = tiny_config_dict(tmp_path / "sd")
    data["models"].update({"clip_ais": str(clip), "clip_eval": str(clip), "wav2clip": str(tmp_path / "Wav2CLIP.pt"),
                           "fid_features": str(write_fid_folder(tmp_path / "fid"))})
    cfg = config_mod.from_dict(data)
    sizes = [(64, 36), (36, 64), (128, 72), (40, 40), (90, 50)]  # landscape and portrait frames, several sources
    rows, rng = [], np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        frame = tmp_path / f"f{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(frame)
        sf.write(tmp_path / f"a{i}.wav", 0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
        rows.append({"clip_id": f"c{i}", "label": "rain" if i % 2 else "fire", "split": "val", "eval": True,
                     "frame": str(frame), "audio": str(tmp_path / f"a{i}.wav")})
    rows += [{**rows[0], "clip_id": "t0", "split": "train"}, {**rows[1], "clip_id": "t1", "split": "train"}]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)

    small = compute_references(cfg, tmp_path / "manifest.csv", tmp_path / "r2.safetensors", tmp_path / "r2.csv",
                               batch_size=2, progress=False)
    whole = compute_references(cfg, tmp_path / "manifest.csv", tmp_path / "r9.safetensors", tmp_path / "r9.csv",
                               batch_size=32, progress=False)
    assert small.clip_ids == [f"c{i}" for i in range(5)]
    for name in ("audio", "frames", "fid"):
        assert torch.allclose(getattr(small, name), getattr(whole, name), atol=1e-6), name
    res = cfg.generation.resolution
    val_frames = load_images([r["frame"] for r in rows[:5]], res)
    direct = image_features(load_clip(cfg, "clip_eval"), val_frames)
    assert torch.allclose(small.frames, direct, atol=1e-6)
    # SAC's shape classifier: fitted on the train frames (read as the val frames are), stored with its label order
    # and its accuracy on the val frames, whatever the batch size
    fitted = ShapeClassifier.fit(load_images([rows[5]["frame"], rows[6]["frame"]], res), ["fire", "rain"])
    for refs in (small, whole):
        assert refs.shape.labels == ["fire", "rain"] and refs.shape.predict(val_frames) == fitted.predict(val_frames)
        assert refs.shape_real == fitted.accuracy(val_frames, small.labels)
        assert "2 training frames of 2 classes" in refs.shape_note
    pd.DataFrame(rows[:6]).to_csv(tmp_path / "one_class.csv", index=False)  # one train class: no SAC, not an error
    none = compute_references(cfg, tmp_path / "one_class.csv", tmp_path / "r1.safetensors", tmp_path / "r1.csv",
                              progress=False)
    assert none.shape is None and none.shape_real is None and "SAC needs at least 2" in none.shape_note
    save_file({k: v for k, v in load_file(str(tmp_path / "r1.safetensors")).items()}, str(tmp_path / "old.safetensors"))
    with pytest.raises(ValueError, match="before SAC's shape classifier existed"):  # a cache of an older build
        load_references(tmp_path / "old.safetensors", tmp_path / "r1.csv")
