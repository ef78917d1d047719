"""Wav2CLIP audio encoder (docs/paper-profile.md): official checkpoint layout, front end, determinism,
strict save/load."""

import numpy as np
import pytest
import torch

from sonic.models.wav2clip import (
    Wav2Clip,
    Wav2ClipConfig,
    load_wav2clip,
    official_state_dict_shapes,
    save_wav2clip,
)

MINI = Wav2ClipConfig(base_width=8, blocks=(1, 1, 1, 1), mlp_hidden=32, embed_dim=24)


def build(config=None, seed=0):
    torch.manual_seed(seed)
    return Wav2Clip(config).eval()


def waves(batch=2, seconds=1.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(16000 * seconds), generator=g) * 0.1


def reference_power_stft(x, n_fft, hop):
    """torchaudio.transforms.Spectrogram(n_fft, hop_length=hop) written out in numpy."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)], axis=1)
    return np.abs(np.fft.rfft(frames * window[:, None], axis=0)) ** 2  # (n_fft // 2 + 1, frames)


def test_default_state_dict_matches_the_official_checkpoint_layout():
    with torch.device("meta"):
        model = Wav2Clip()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = official_state_dict_shapes()
    assert shapes == official
    assert len(official) == 125
    assert official["audio_encoder.spectrogram.window"] == (512,)
    assert official["audio_encoder.conv1.weight"] == (64, 1, 7, 7)
    assert official["audio_encoder.layer4.0.downsample.0.weight"] == (512, 256, 1, 1)
    assert official["audio_transform.sequential.3.weight"] == (512, 512)
    assert not any(".fc." in k or k.startswith("audio_encoder.fc") for k in official)
    assert sum(p.numel() for p in model.parameters()) == 11_695_552


def test_forward_shape_and_determinism():
    model = build()
    x = waves()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (2, 512) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.equal(a, build()(x).detach())  # same seed, same weights, same output
    assert not torch.allclose(a[0], a[1])


def test_front_end_is_torchaudio_spectrogram_512_353():
    """Power STFT with a periodic Hann window, centred frames and reflect padding (torchaudio's defaults)."""
    model = build(MINI)
    x = waves(batch=1, seconds=0.5)
    ours = model.audio_encoder.spectrogram(x)[0].numpy()
    ref = reference_power_stft(x[0].numpy().astype(np.float64), n_fft=512, hop=353)
    assert ours.shape == ref.shape == (257, 1 + 8000 // 353)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)
    spec = model.audio_encoder.log_spectrogram(x)
    assert spec.shape == (1, 1, 257, 23)
    assert abs(spec.mean().item()) < 1e-5 and abs(spec.std().item() - 1) < 1e-4


def test_per_clip_normalisation_makes_clips_independent_of_their_batch():
    model = build(MINI)
    x = waves(batch=3)
    x[1] *= 10.0
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        official = Wav2Clip(Wav2ClipConfig(**(MINI.to_dict() | {"per_clip_norm": False}))).eval()
        official.load_state_dict(model.state_dict())
        # The official batch-wide statistic agrees for a batch of one and differs for a mixed batch.
        assert torch.allclose(official(x[:1]), alone[:1], atol=1e-6)
        assert not torch.allclose(official(x), together, atol=1e-4)
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("config", [None, MINI], ids=["official", "miniature"])
def test_save_load_round_trip_is_bit_exact(tmp_path, config):
    model = build(config)
    with torch.no_grad():  # make BN statistics non-trivial so that buffers are checked too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "Wav2CLIP.pt"
    save_wav2clip(model, path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(model.state_dict())  # flat, the official layout
    loaded = load_wav2clip(path)
    assert loaded.config == model.config
    assert not loaded.training
    x = waves()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_training_only_entries_and_lightning_nesting_are_accepted(tmp_path):
    model = build(MINI)
    state = model.state_dict()
    extra = {"image_transform.sequential.0.weight": torch.zeros(2, 2), "loss_fn_a.logit_scale": torch.tensor(2.6)}
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state | extra, "epoch": 3}, path)
    x = waves(batch=1)
    with torch.no_grad():
        assert torch.equal(load_wav2clip(path)(x), model(x))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("audio_encoder.layer1.0.conv1.weight"), "missing"),
        (lambda s: s.pop("audio_transform.sequential.3.bias"), "missing"),
        (lambda s: s.__setitem__("audio_encoder.fc.weight", torch.zeros(309, 64)), "unexpected"),
        (lambda s: s.__setitem__("something_else.weight", torch.zeros(1)), "unexpected"),
        (lambda s: s.__setitem__("audio_transform.sequential.0.bias", torch.zeros(7)), "shape|missing"),
    ],
    ids=["missing-encoder", "missing-head", "unexpected-fc", "unexpected-foreign", "wrong-shape"],
)
def test_mismatched_checkpoint_is_an_error_naming_the_file(tmp_path, edit, match):
    state = build(MINI).state_dict()
    edit(state)
    path = tmp_path / "broken_wav2clip.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=match) as info:
        load_wav2clip(path)
    assert str(path) in str(info.value)


def test_wrong_config_and_bad_input_are_errors(tmp_path):
    path = tmp_path / "mini.pt"
    save_wav2clip(build(MINI), path)
    with pytest.raises(ValueError, match=str(path)):
        load_wav2clip(path, config=Wav2ClipConfig())
    with pytest.raises(ValueError, match="blocks"):
        Wav2ClipConfig(blocks=(2, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        build(MINI)(torch.zeros(16000))
