"""Microsoft CLAP 2022 (sonic.models.msclap): the official layout, the log-mel front end against librosa, strict
loading of a checkpoint in the official format, and the authors' preprocessing."""

import logging

import librosa
import numpy as np
import pytest
import torch

from sonic import config
from sonic.models import msclap, registry

TINY = msclap.MsClapConfig(widths=(4, 8, 8, 8, 8, 16), out_emb=16, d_proj=12, classes_num=5)  # the official 10 s


def tone(seconds=1.0, rate=44100, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def random_model(cfg=TINY, seed=0):
    torch.manual_seed(seed)
    model = msclap.MsClapAudio(cfg)
    with torch.no_grad():  # running statistics away from their initial 0 / 1, as a trained model's
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_module_matches_the_official_layout_of_the_2022_checkpoint():
    # The paper-size audio branch: Cnn14 (64 mels, 2048 channels, AudioSet head) + 2048 -> 1024 projection.
    model = msclap.MsClapAudio()
    got = {msclap.PREFIX + k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == msclap.official_state_dict_shapes()
    assert got["audio_encoder.base.conv_block6.conv2.weight"] == (2048, 2048, 3, 3)
    assert got["audio_encoder.projection.linear1.weight"] == (1024, 2048)
    assert got["audio_encoder.base.logmel_extractor.melW"] == (513, 64)
    encoder = msclap.MsClapAudioEncoder(model)
    assert (encoder.sample_rate, encoder.embed_dim) == (44100, 1024)


def test_log_mel_front_end_matches_librosa():
    model = msclap.MsClapAudio(TINY)
    wave = tone(1.0)
    ours = model.base.log_mel(torch.from_numpy(wave)[None])[0, 0].numpy().T  # (mels, frames)
    mel = librosa.feature.melspectrogram(y=wave, sr=44100, n_fft=1024, hop_length=320, win_length=1024, window="hann",
                                         center=True, pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=14000)
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == ref.shape == (64, 1 + len(wave) // 320)
    assert np.abs(ours - ref).max() < 0.1  # dB


def test_checkpoint_loads_strictly_and_ignores_the_text_branch(tmp_path, caplog):
    model = random_model()
    text = {"caption_encoder.projection.linear1.weight": torch.zeros(12, 8), "logit_scale": torch.tensor(2.0)}
    path = msclap.save_checkpoint(tmp_path / "CLAP_weights_2022.pth", model, text)
    with caplog.at_level(logging.INFO, logger="sonic.models.msclap"):
        encoder = msclap.load_msclap_2022(path)
    assert "2 text-branch and other tensors" in caplog.text
    assert encoder.model.config == TINY
    waves = [tone(0.7), tone(1.3, freq=880.0)]
    expected = torch.nn.functional.normalize(
        model(torch.from_numpy(np.stack([msclap.fit_duration(w, 441000) for w in waves]))), dim=-1)
    got = encoder.embed(waves)
    assert got.shape == (2, 12)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(2))


def test_checkpoint_with_a_missing_or_foreign_audio_key_is_an_error(tmp_path):
    model = random_model()
    state = {msclap.PREFIX + k: v for k, v in model.state_dict().items()}
    del state["audio_encoder.base.conv_block3.bn2.running_var"]
    state["audio_encoder.base.extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="conv_block3.bn2.running_var") as err:
        msclap.load_msclap_2022(tmp_path / "bad.pth")
    assert "audio_encoder.base.extra.weight" in str(err.value)
    torch.save({"model": {"caption_encoder.x": torch.zeros(1)}}, tmp_path / "text_only.pth")
    with pytest.raises(ValueError, match="not a Microsoft CLAP checkpoint"):
        msclap.load_msclap_2022(tmp_path / "text_only.pth")


def test_checkpoint_made_with_other_mel_settings_is_an_error(tmp_path):
    other = msclap.MsClapAudio(msclap.MsClapConfig(**{**TINY.to_dict(), "fmax": 8000}))
    model = random_model()
    state = {msclap.PREFIX + k: v for k, v in model.state_dict().items()}
    state["audio_encoder.base.logmel_extractor.melW"] = other.state_dict()["base.logmel_extractor.melW"]
    torch.save({"model": state}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other STFT/mel settings"):
        msclap.load_msclap_2022(tmp_path / "other.pth")


def test_preprocessing_tiles_short_clips_and_keeps_the_first_window_of_long_ones():
    short = np.arange(3, dtype=np.float32)
    assert msclap.fit_duration(short, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    long = np.arange(20, dtype=np.float32)
    assert msclap.fit_duration(long, 5).tolist() == [0, 1, 2, 3, 4]
    encoder = msclap.MsClapAudioEncoder(random_model())
    clip = tone(12.5, freq=660.0)
    first = encoder.embed([clip[:441000]])
    torch.testing.assert_close(encoder.embed([clip]), first)  # a long clip: its first `duration` seconds
    torch.testing.assert_close(encoder.embed([clip]), encoder.embed([clip]))  # no random crop
    assert not torch.allclose(encoder.embed([clip], gain_db=-20.0), first)  # gain reaches the embedding
    with pytest.raises(ValueError, match="empty waveform"):
        encoder.embed([np.zeros(0, np.float32)])
    stereo = np.stack([clip[:1000], -clip[:1000]])  # flattened, it would embed a clip of interleaved channels
    with pytest.raises(ValueError, match=r"mono waveform \(1-D\), got shape \(2, 1000\)"):
        encoder.embed([stereo])


def test_registry_loads_the_msclap_backend_by_kind(tmp_path):
    path = msclap.save_checkpoint(tmp_path / "clap.pth", random_model())
    base = {"models": {"sd": str(tmp_path), "clap": str(path)},
            "audio_encoder": {"kind": "msclap_2022", "embed_dim": 12, "sample_rate": 44100}}
    encoder = registry.load_audio_encoder(config.from_dict(base, partial=True))
    assert isinstance(encoder, msclap.MsClapAudioEncoder) and encoder.embed_dim == 12
    wrong = {**base, "audio_encoder": {**base["audio_encoder"], "embed_dim": 1024}}
    with pytest.raises(config.ConfigError, match="12-d embeddings but audio_encoder.embed_dim is 1024"):
        registry.load_audio_encoder(config.from_dict(wrong, partial=True))
    folder = {**base, "models": {"sd": str(tmp_path), "clap": str(tmp_path)}}
    with pytest.raises(config.ConfigError, match="is not a file"):
        registry.load_audio_encoder(config.from_dict(folder, partial=True))
