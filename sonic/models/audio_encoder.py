"""The audio encoder behind one small interface (docs/paper-profile.md): waveforms in, one embedding per
clip out.

Two backends implement the :class:`AudioEncoder` protocol: LAION CLAP (transformers ``ClapModel`` +
``ClapFeatureExtractor``, ``audio_encoder.kind: clap``, below) and Microsoft CLAP 2022 (``msclap_2022``, the
authors' encoder, :mod:`sonic.models.msclap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from sonic.audio import apply_gain


@runtime_checkable
class AudioEncoder(Protocol):
    sample_rate: int
    embed_dim: int

    def embed(self, waveforms: Sequence[np.ndarray], gain_db: float = 0.0) -> torch.Tensor:
        """(B,) mono waveforms at ``sample_rate`` -> (B, embed_dim) float32 embeddings."""
        ...


class ClapAudioEncoder:
    """LAION CLAP through transformers; embeddings are the L2-normalised projected audio features."""

    def __init__(self, model, feature_extractor, device: str | torch.device = "cpu"):
        self.model = model.eval().requires_grad_(False).to(device)
        self.feature_extractor = feature_extractor
        self.device = torch.device(device)
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.embed_dim = int(model.config.projection_dim)

    @classmethod
    def from_pretrained(cls, path: str, device: str | torch.device = "cpu") -> "ClapAudioEncoder":
        from transformers import ClapFeatureExtractor, ClapModel

        return cls(ClapModel.from_pretrained(path), ClapFeatureExtractor.from_pretrained(path), device)

    @torch.no_grad()
    def embed(self, waveforms: Sequence[np.ndarray], gain_db: float = 0.0) -> torch.Tensor:
        # The extractor crops longer clips at a random offset; keep the first max_length seconds instead.
        limit = int(getattr(self.feature_extractor, "nb_max_samples", 0)) or None
        waves = [apply_gain(np.asarray(w, dtype=np.float32)[:limit], gain_db) for w in waveforms]
        inputs = self.feature_extractor(waves, sampling_rate=self.sample_rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model.get_audio_features(**inputs)
        return out.pooler_output.float().cpu()
