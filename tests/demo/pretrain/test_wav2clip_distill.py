"""Miniature Wav2CLIP distillation: runs on tiny data, saves the official layout, deterministic."""

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from sonic.models import registry
from sonic.config import from_dict
from sonic.models.wav2clip import Wav2ClipConfig, load_wav2clip
from sonic.demo.pretrain.data import Pair
from sonic.demo.pretrain.wav2clip import Wav2ClipSettings, train_wav2clip
from tests.tiny import tiny_config_dict


def tiny_world(tmp_path):
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 16, "patch_size": 8},
        projection_dim=8))
    clip.save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(
        tmp_path / "clip")
    pairs = []
    for i, (label, colour, freq) in enumerate([("red", (255, 0, 0), 300), ("blue", (0, 0, 255), 900)] * 3):
        frame, audio = tmp_path / f"f{i}.png", tmp_path / f"a{i}.wav"
        Image.fromarray(np.full((32, 32, 3), colour, np.uint8)).save(frame)
        t = np.arange(16000) / 16000
        sf.write(audio, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
        pairs.append(Pair(f"c{i}", "toy", label, str(frame), str(audio), "train", label))
    return pairs


def test_distillation_saves_official_layout_deterministically(tmp_path):
    pairs = tiny_world(tmp_path)
    settings = Wav2ClipSettings(steps=3, batch_size=4, crop_seconds=0.5,
                                model=Wav2ClipConfig(base_width=4, blocks=(1, 1, 1, 1), mlp_hidden=8, embed_dim=8))
    q1 = train_wav2clip(pairs, pairs, tmp_path / "clip", tmp_path / "a" / "Wav2CLIP.pt", settings)
    train_wav2clip(pairs, pairs, tmp_path / "clip", tmp_path / "b" / "Wav2CLIP.pt", settings)
    a, b = load_wav2clip(tmp_path / "a" / "Wav2CLIP.pt"), load_wav2clip(tmp_path / "b" / "Wav2CLIP.pt")
    assert a.config.embed_dim == 8
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert set(q1["val"]) == {"top1_exact", "top1_class", "chance_exact", "chance_class"}
    assert (tmp_path / "a" / "quality.json").is_file()


def test_registry_loads_the_distilled_checkpoint(tmp_path):
    pairs = tiny_world(tmp_path)
    settings = Wav2ClipSettings(steps=1, batch_size=4, crop_seconds=0.5,
                                model=Wav2ClipConfig(base_width=4, blocks=(1, 1, 1, 1), mlp_hidden=8, embed_dim=8))
    out = tmp_path / "w" / "Wav2CLIP.pt"
    train_wav2clip(pairs, pairs, tmp_path / "clip", out, settings)
    cfg = from_dict(tiny_config_dict(tmp_path / "sd", models={"sd": str(tmp_path / "sd"), "wav2clip": str(out)}))
    model = registry.load_wav2clip(cfg)
    assert model.config.embed_dim == 8 and not model.training
