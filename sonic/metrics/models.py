"""AIS, IIS and AIC from images, waveforms and the evaluation models (docs/evaluation.md): embed, then score.

The CLIPs are :class:`sonic.models.registry.Clip` (``load_clip(cfg, "clip_ais")`` is ViT-B/32 for AIS,
``load_clip(cfg, "clip_eval")`` is ViT-L/14 for IIS and AIC); the audio tower is
:class:`sonic.models.wav2clip.Wav2Clip` (``load_wav2clip(cfg)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sonic.metrics.clip_scores import image_features, zero_shot
from sonic.metrics.scores import aic_from_predictions, ais_from_embeddings, iis_from_embeddings


@torch.no_grad()
def wav2clip_features(wav2clip: torch.nn.Module, waveforms: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """L2-normalised Wav2CLIP embeddings (B, D) of (B, N) mono waveforms at ``wav2clip.sample_rate``, on the CPU."""
    if waveforms.dim() != 2:
        raise ValueError(f"waveforms must be (B, N), got {tuple(waveforms.shape)}")
    device = next(wav2clip.parameters()).device
    out = [F.normalize(wav2clip(chunk.to(device)).float(), dim=-1).cpu() for chunk in waveforms.split(batch_size)]
    return torch.cat(out)


def ais(clip, wav2clip: torch.nn.Module, images: torch.Tensor, audio_index: torch.Tensor,
        reference_waveforms: torch.Tensor) -> float:
    """AIS (docs/evaluation.md) of generated (N, 3, H, W) images in [0, 1]; image i was conditioned on
    ``reference_waveforms[audio_index[i]]`` (R, N_samples), and the other R - 1 audios are its references."""
    audio = wav2clip_features(wav2clip, reference_waveforms)  # (R, D)
    index = audio_index.long().cpu()
    return ais_from_embeddings(image_features(clip, images), audio[index], audio, index)


def iis(clip, images: torch.Tensor, frame_index: torch.Tensor, reference_frames: torch.Tensor) -> float:
    """IIS (docs/evaluation.md) of generated (N, 3, H, W) images in [0, 1]; ``reference_frames[frame_index[i]]`` is the
    ground-truth frame of image i's audio, and the other R - 1 frames of (R, 3, H', W') are its references."""
    frames = image_features(clip, reference_frames)  # (R, D)
    index = frame_index.long().cpu()
    return iis_from_embeddings(image_features(clip, images), frames[index], frames, index)


def aic(clip, images: torch.Tensor, truth: list[str], label_names: list[str]) -> float:
    """AIC (docs/evaluation.md): zero-shot accuracy of generated (N, 3, H, W) images over the raw label strings
    ``label_names`` (no prompt template) against the labels of their audios."""
    return aic_from_predictions(zero_shot(clip, images, label_names), truth)
