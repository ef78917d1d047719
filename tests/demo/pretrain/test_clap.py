"""The miniature CLAP trainer: a few steps on tiny tones, saved as a folder the real loaders read."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel, ClapProcessor

from sonic.models import registry
from sonic.config import ConfigError, from_dict
from sonic.audio import load_audio
from sonic.models.audio_encoder import ClapAudioEncoder
from sonic.demo.pretrain.clap import ClapRecipe, build_feature_extractor, contrastive_loss, log_mels, main
from tests.tiny import tiny_config_dict

SR = 48000
CLIPS = [  # dataset, label, tone (Hz), seconds, brightness, split
    ("greatest_hits", "wood", 300.0, 1.0, 40, "train"),
    ("greatest_hits", "wood", 320.0, 1.5, 220, "train"),
    ("greatest_hits", "metal", 2000.0, 1.0, 220, "train"),
    ("greatest_hits", "metal", 2100.0, 0.7, 40, "val"),
    ("ravdess", "happy", 600.0, 1.2, 220, "train"),
    ("ravdess", "sad", 150.0, 1.2, 40, "train"),
    ("ravdess", "sad", 160.0, 0.9, 40, "val"),
]


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-t)).astype(np.float32)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    paths = []
    for dataset in ("greatest_hits", "ravdess"):
        rows = []
        for i, (ds, label, freq, seconds, bright, split) in enumerate(CLIPS):
            if ds != dataset:
                continue
            frame, audio = root / f"{ds}_{i}.png", root / f"{ds}_{i}.wav"
            Image.fromarray(np.full((16, 16, 3), bright, np.uint8)).save(frame)
            sf.write(audio, tone(freq, seconds), SR, subtype="PCM_16")
            rows.append(dict(clip_id=f"{ds}_{i}", dataset=ds, label=label, frame=str(frame), audio=str(audio),
                             split=split))
        paths.append(root / f"{dataset}.csv")
        pd.DataFrame(rows).to_csv(paths[-1], index=False)
    return [str(p) for p in paths]


@pytest.fixture(scope="module")
def trained(manifests, tmp_path_factory):
    out = tmp_path_factory.mktemp("clap")
    quality = main(manifests, str(out), seed=0, steps=3)
    return out, quality


def test_saved_folder_is_a_clap_audio_encoder(trained):
    out, _ = trained
    enc = ClapAudioEncoder.from_pretrained(str(out))
    assert (enc.sample_rate, enc.embed_dim) == (48000, 128)
    emb = enc.embed([tone(440.0, 0.5), tone(900.0, 3.0)])
    assert emb.shape == (2, 128)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(emb[0], emb[1])
    assert ClapModel.from_pretrained(out).config.projection_dim == 128


def test_training_front_end_is_the_saved_feature_extractor(trained, manifests):
    """The precomputed log-mels the model trained on are what the saved feature extractor gives at inference."""
    out, _ = trained
    audio = pd.read_csv(manifests[0])["audio"].tolist()[:2]
    enc = ClapAudioEncoder.from_pretrained(str(out))
    feats = log_mels(ClapFeatureExtractor.from_pretrained(out), audio)
    with torch.no_grad():
        direct = enc.model.get_audio_features(input_features=feats).pooler_output
    torch.testing.assert_close(enc.embed([load_audio(p, SR) for p in audio]), direct)


def test_same_seed_same_weights(trained, manifests, tmp_path):
    out, quality = trained
    again = main(manifests, str(tmp_path / "again"), seed=0, steps=3)
    first, second = load_file(out / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert again["retrieval_top1"] == quality["retrieval_top1"]
    assert (out / "tokenizer.json").read_text() == (tmp_path / "again" / "tokenizer.json").read_text()
    main(manifests, str(tmp_path / "other"), seed=1, steps=1)
    third = load_file(tmp_path / "other" / "model.safetensors")
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_tokenizer_and_processor_round_trip(trained):
    out, _ = trained
    tok = AutoTokenizer.from_pretrained(out)
    for text in ("a bright photo of a drumstick hitting wood", "a sad face singing", "metal", "forest+rain"):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok("a bright photo of a drumstick hitting wood")["input_ids"]) < 16  # words, not bytes
    processor = ClapProcessor.from_pretrained(out)
    model = ClapModel.from_pretrained(out)
    assert len(processor.tokenizer) == model.config.text_config.vocab_size
    inputs = processor(text=["wood", "a dark photo of a sad face singing"], padding=True, return_tensors="pt")
    with torch.no_grad():
        text = model.get_text_features(**inputs).pooler_output
    assert text.shape == (2, 128)


def test_quality_json(trained):
    out, quality = trained
    saved = json.loads((out / "quality.json").read_text())
    assert saved == json.loads(json.dumps(quality))
    for key in ("retrieval_top1", "retrieval_class_top1", "chance_retrieval_top1", "chance_retrieval_class_top1",
                "zero_shot", "chance_zero_shot", "steps", "batch_size", "lr", "cpu_seconds", "wall_seconds",
                "parameters"):
        assert key in saved, key
    assert saved["steps"] == 3 and saved["n"] == 2 and saved["n_train"] == 5
    assert set(saved["zero_shot"]) == {"greatest_hits", "ravdess"}
    assert saved["chance_zero_shot"] == {"greatest_hits": 0.5, "ravdess": 0.5}
    assert 0.0 <= saved["retrieval_class_top1"] <= 1.0 and saved["retrieval_top1"] <= saved["retrieval_class_top1"]


def test_long_clips_are_cut_deterministically(tmp_path):
    """A clip over max_length_s is cut to its first max_length_s, never cropped at random."""
    fe = build_feature_extractor(ClapRecipe())
    long, head = tmp_path / "long.wav", tmp_path / "head.wav"
    wave = np.random.default_rng(0).uniform(-0.3, 0.3, 11 * SR).astype(np.float32)
    sf.write(long, wave, SR, subtype="FLOAT")
    sf.write(head, wave[: 10 * SR], SR, subtype="FLOAT")
    feats = log_mels(fe, [str(long), str(long), str(head)])
    assert feats.shape == (3, 1, 251, 64)
    torch.testing.assert_close(feats[0], feats[1])
    torch.testing.assert_close(feats[0], feats[2])


def test_contrastive_loss_rewards_alignment_and_shares_repeated_texts():
    scales = SimpleNamespace(logit_scale_a=torch.tensor(np.log(50.0)), logit_scale_t=torch.tensor(np.log(50.0)))
    texts = torch.eye(2, 8)
    text_of = torch.tensor([0, 1, 0])  # clips 0 and 2 share text 0
    aligned = contrastive_loss(scales, texts[text_of], texts, text_of)
    swapped = contrastive_loss(scales, texts[1 - text_of], texts, text_of)
    # at best text 0 splits its target over its two clips: the text->audio side keeps that entropy, log(2) / 2
    torch.testing.assert_close(aligned, torch.tensor(np.log(2) / 4, dtype=torch.float32), atol=1e-3, rtol=0)
    assert swapped > 10


def test_registry_loads_it_as_the_audio_encoder(trained, tmp_path):
    out, _ = trained
    cfg = from_dict(tiny_config_dict(tmp_path / "sd", models={"sd": str(tmp_path / "sd"), "clap": str(out)},
                                     audio_encoder={"embed_dim": 128, "sample_rate": 48000}))
    encoder = registry.load_audio_encoder(cfg)
    assert encoder.embed([tone(440.0, 1.0)]).shape == (1, 128)
    wrong = from_dict(tiny_config_dict(tmp_path / "sd", models={"sd": str(tmp_path / "sd"), "clap": str(out)},
                                       audio_encoder={"embed_dim": 512, "sample_rate": 48000}))
    with pytest.raises(ConfigError, match="embed_dim"):
        registry.load_audio_encoder(wrong)
