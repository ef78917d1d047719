"""The CLAP cache: one embedding per manifest clip, in manifest order, equal to encoding each clip directly."""

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from sonic.audio import load_audio
from sonic.data.features import compute_clap_cache, load_clap_cache
from sonic.models.audio_encoder import ClapAudioEncoder
from tests.tiny import write_clap_folder


def test_cache_matches_direct_encoding(tmp_path):
    enc = ClapAudioEncoder.from_pretrained(str(write_clap_folder(tmp_path / "clap")))
    rows = []
    for i in range(5):
        path = tmp_path / f"c{i}.wav"
        t = np.arange(24000) / 48000
        sf.write(path, (0.2 * np.sin(2 * np.pi * (200 + 150 * i) * t)).astype(np.float32), 48000)
        rows.append({"clip_id": f"clip{i}", "audio": str(path)})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    emb = compute_clap_cache(enc, tmp_path / "manifest.csv", tmp_path / "clap.safetensors", tmp_path / "index.csv",
                             batch_size=2)
    cached, index = load_clap_cache(tmp_path / "clap.safetensors", tmp_path / "index.csv")
    assert torch.equal(cached, emb) and cached.shape == (5, 24)
    assert index == {f"clip{i}": i for i in range(5)}
    direct = enc.embed([load_audio(tmp_path / "c3.wav", 48000)])
    torch.testing.assert_close(cached[3:4], direct, rtol=1e-4, atol=1e-5)
