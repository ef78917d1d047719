"""Audio arrays: loading, resampling to mono, and the waveform gain control (paper Fig. 10b)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonic.errors import InputError


class AudioError(InputError):
    """An audio input that cannot be used; the message names the file and the problem."""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate`` Hz."""
    import librosa
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError / RuntimeError
        raise AudioError(f"{path}: cannot decode audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio stream is empty")
    wave = data.mean(axis=1)
    if sr != sample_rate:
        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def apply_gain(wave: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale a waveform by ``gain_db`` decibels (amplitude factor 10^(dB/20)), before encoding."""
    if gain_db == 0:
        return wave
    return (wave * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)

