"""`sonic edit` end to end on a tiny SD folder: audio edit through the cache, interpolation, text-only PnP."""

import numpy as np
import yaml
from PIL import Image

from sonic.cli import main
from tests.tiny import AUDIO_DIM, tiny_config_dict


def test_edit_end_to_end(sd_folder, tmp_path, source_image):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(sd_folder)))
    assert main(["init-weights", "--config", str(cfg), "--out", str(tmp_path / "w")]) == 0
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal(AUDIO_DIM).astype(np.float32))
    source_image.resize((24, 24)).save(tmp_path / "in.png")  # resized to generation.resolution (16)
    base = ["edit", "--config", str(cfg), "--weights", str(tmp_path / "w"), "--image", str(tmp_path / "in.png"),
            "--steps", "3", "--cache", str(tmp_path / "cache")]
    audio = ["--audio", str(tmp_path / "a.npy"), "--embedding", "--beta", "up3=0.5", "--f-t", "0.6", "--out"]
    assert main(base + audio + [str(tmp_path / "one.png")]) == 0
    assert main(base + audio + [str(tmp_path / "two.png")]) == 0
    one = np.asarray(Image.open(tmp_path / "one.png"))
    assert one.shape == (16, 16, 3)
    assert np.array_equal(one, np.asarray(Image.open(tmp_path / "two.png")))
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1  # one inversion for both runs
    mix = ["--audio", str(tmp_path / "a.npy"), "--audio2", str(tmp_path / "b.npy"), "--alpha", "0.5", "--embedding",
           "--resnets", "4", "5", "6", "--out", str(tmp_path / "mix.png")]
    assert main(base + mix) == 0
    assert main(base + ["--text", "a cube", "--out", str(tmp_path / "text.png")]) == 0
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    assert Image.open(tmp_path / "text.png").size == (16, 16)
