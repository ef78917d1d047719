"""The audio-encoder interface with a tiny transformers ClapModel, audio files and the gain control."""

import numpy as np
import pytest
import soundfile as sf
import torch

from sonic.audio import AudioError, apply_gain, load_audio
from sonic.models.audio_encoder import AudioEncoder, ClapAudioEncoder
from tests.tiny import write_clap_folder


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    return write_clap_folder(tmp_path_factory.mktemp("clap"))


def tone(seconds=0.5, sr=48000, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_clap_encoder_embeds_files_deterministically(clap_folder, tmp_path):
    enc = ClapAudioEncoder.from_pretrained(str(clap_folder))
    assert isinstance(enc, AudioEncoder)
    assert (enc.sample_rate, enc.embed_dim) == (48000, 24)
    sf.write(tmp_path / "a.wav", tone(sr=22050), 22050)  # resampled on load
    wave = load_audio(tmp_path / "a.wav", enc.sample_rate)
    assert abs(len(wave) - 24000) <= 1
    e1, e2 = enc.embed([wave]), enc.embed([wave])
    assert e1.shape == (1, 24) and torch.equal(e1, e2)
    torch.testing.assert_close(e1.norm(dim=-1), torch.ones(1))
    assert not torch.allclose(enc.embed([wave], gain_db=-20.0), e1)


def test_gain_is_decibels_on_the_waveform():
    w = tone()
    np.testing.assert_allclose(apply_gain(w, 20.0), 10 * w, rtol=1e-6)
    np.testing.assert_allclose(apply_gain(w, -6.0), w * 10 ** (-6 / 20), rtol=1e-6)
    assert apply_gain(w, 0.0) is w


def test_bad_audio_files_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav", 48000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match="bad.wav: cannot decode"):
        load_audio(tmp_path / "bad.wav", 48000)

