"""The interactive app (sonic/app): a tiny SD folder, a tiny CLAP, untrained weights and a config, shared by the
studio tests and the browser test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from sonic.cli import main
from tests.tiny import tiny_config_dict, write_clap_folder, write_sd_folder

RESOLUTION = 16


def write_app_world(root: Path) -> dict[str, Path]:
    """config.yaml, weights/, a tone WAV, a second WAV, a silent WAV, a text file, a PNG source image; and
    ``wrong/``: weights whose projector reads embeddings of another size than the config's CLAP gives;
    ``broken/``: the weights less one adapter tensor."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    sd = write_sd_folder(root / "sd")
    clap = write_clap_folder(root / "clap")
    data = tiny_config_dict(sd)
    data["models"]["clap"] = str(clap)
    data["generation"]["resolution"] = RESOLUTION
    data["editing"] = {"steps": 3}
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["init-weights", "--config", str(cfg), "--out", str(root / "weights")]) == 0
    wrong = dict(data, audio_encoder={**data["audio_encoder"], "embed_dim": data["audio_encoder"]["embed_dim"] + 4})
    wrong_cfg = root / "wrong.yaml"
    wrong_cfg.write_text(yaml.safe_dump(wrong))
    assert main(["init-weights", "--config", str(wrong_cfg), "--out", str(root / "wrong")]) == 0
    _drop_an_adapter_tensor(root / "weights", root / "broken")
    t = np.arange(48000) / 48000
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    sf.write(root / "noise.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 48000).astype(np.float32), 48000)
    sf.write(root / "silence.wav", np.zeros(48000, np.float32), 48000)
    (root / "notes.txt").write_text("this is not audio\n")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "source.png")
    return {"config": cfg, "weights": root / "weights", "wrong": root / "wrong", "tone": root / "tone.wav",
            "broken": root / "broken", "noise": root / "noise.wav", "silence": root / "silence.wav",
            "text": root / "notes.txt", "image": root / "source.png"}


def _drop_an_adapter_tensor(weights: Path, out: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    from sonic.models.io import WEIGHTS_NAME

    shutil.copytree(weights, out)
    tensors = load_file(str(out / WEIGHTS_NAME))
    del tensors[sorted(k for k in tensors if k.startswith("adapters."))[0]]
    save_file(tensors, str(out / WEIGHTS_NAME))
