"""Fig. 10 grid (interpolation and gain) and the gated-output norm analysis (supp. Fig. 3) write their files."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from sonic.evaluation.controls import (
    control_embeddings,
    control_measures,
    figure10,
    gate_norms,
    most_different_pair,
    record_gate_norms,
    save_gate_norms,
)
from tests.editing.conftest import audio_embeds
from tests.tiny import AUDIO_DIM


class StubEncoder:
    """A deterministic stand-in for CLAP whose embedding depends on the waveform and on the gain."""

    sample_rate, embed_dim = 16000, AUDIO_DIM

    def embed(self, waveforms, gain_db=0.0):
        w = torch.as_tensor(np.stack(waveforms)[:, :AUDIO_DIM], dtype=torch.float32) * 10 ** (gain_db / 20)
        return torch.tanh(w)


def waves():
    rng = np.random.default_rng(0)
    return rng.standard_normal(1000).astype(np.float32) * 0.3, rng.standard_normal(1000).astype(np.float32) * 0.3


def test_control_embeddings_interpolate_and_sweep_gain(pipe):
    pipe.audio_encoder = StubEncoder()
    a, b = waves()
    interp, gains = control_embeddings(pipe, a, b, alphas=(0.0, 1.0), gains_db=(-6.0, 0.0, 6.0))
    torch.testing.assert_close(interp, torch.cat([pipe.embed_audio([a]), pipe.embed_audio([b])]))
    assert gains.shape == (3, AUDIO_DIM) and torch.equal(gains[1], pipe.embed_audio([a])[0])
    assert not torch.equal(gains[0], gains[2])


def test_figure10_writes_a_grid(pipe, source_image, tmp_path):
    pipe.audio_encoder = StubEncoder()
    a, b = waves()
    measures = figure10(pipe, source_image, a, b, tmp_path / "fig10.png", alphas=(0.0, 0.5, 1.0),
                        gains_db=(-6.0, 6.0), num_inference_steps=3)
    grid = Image.open(tmp_path / "fig10.png")
    assert grid.size[0] == 4 * 128 and grid.size[1] == 2 * (128 + 12)  # source + 3 columns, two rows
    assert measures["alphas"] == [0.0, 0.5, 1.0] and measures["gains_db"] == [-6.0, 6.0]
    assert len(measures["brightness"]) == 2 and all(0 <= v <= 1 for v in measures["brightness"])
    assert "clip_distance" not in measures  # no CLIP given


def test_control_measures_on_constructed_images():
    dark, bright = torch.full((3, 8, 8), 0.2), torch.full((3, 8, 8), 0.8)
    m = control_measures(torch.stack([dark, bright]), torch.stack([dark, bright]), clip=None)
    assert m["brightness"] == pytest.approx([0.2, 0.8])


def test_the_most_different_pair_is_the_least_alike_class_means():
    f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.05]])
    a, b, cosine = most_different_pair(f, ["x", "x", "y", "y", "z"])
    assert (a, b) == ("x", "z") and cosine < -0.9
    with pytest.raises(ValueError, match="two classes"):
        most_different_pair(f[:2], ["x", "x"])


def test_gate_norms_csv_and_plot(pipe, tmp_path):
    rows = gate_norms(pipe, audio_embeds(2), num_inference_steps=3)
    assert len(rows) == 3 * len(pipe.adapters.names)
    assert all(r["norm"] > 0 for r in rows)  # gates are open in the fixture
    save_gate_norms(rows, tmp_path / "norms.csv", tmp_path / "norms.png")
    with (tmp_path / "norms.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert Image.open(tmp_path / "norms.png").size[0] > 100
    assert all(not m._forward_hooks for _, m in pipe.adapters.modules())
    with torch.no_grad():  # beta 0 switches the audio branch off: nothing to record
        with record_gate_norms(pipe.adapters) as norms:
            pipe(audio_embeds(1), num_inference_steps=2, progress=False, beta=0.0)
    assert all(v == [] for v in norms.values())
