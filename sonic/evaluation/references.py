"""Per-dataset evaluation references, computed once and cached (SPEC §4, supp. §2.1).

For every clip of the validation split: the Wav2CLIP embedding of its audio (the AIS references), the
``clip_eval`` embedding of its frame (the IIS references and ground truth) and the FID features of its frame (the
FID real set). One safetensors file (``audio``, ``frames``, ``fid``; row i = clip i) plus an index CSV
(row, clip_id, label), so every method's scoring reads the same numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sonic.audio import load_audio
from sonic.data.tables import read_csv, write_csv

log = logging.getLogger(__name__)

AUDIO_SECONDS = 10.0  # Wav2CLIP input length; shorter clips are repeated to length (as in its distillation)


def fixed_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Crop to ``samples`` or repeat the clip until it is that long."""
    return np.resize(wave, samples) if len(wave) < samples else wave[:samples]


def load_images(paths: list[str], size: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) float images in [0, 1]; resized to ``size`` x ``size`` when given (else all must agree)."""
    arrays = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BICUBIC)
            arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {sorted(shapes)}; pass size=")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def feature_network(cfg, clip_eval):
    """The FID feature network: the standard Inception from ``models.fid_features`` when set, otherwise the
    ``clip_eval`` image tower (the demo profile)."""
    from sonic.metrics.fid import ClipImageFeatures, InceptionFeatures

    if cfg.models.fid_features:
        return InceptionFeatures(cfg.models.fid_features)
    return ClipImageFeatures(clip_eval)


@torch.no_grad()
def batched(module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    return torch.cat([module(chunk).float().cpu() for chunk in images.split(batch_size)])


@dataclass(frozen=True)
class References:
    clip_ids: list[str]
    labels: list[str]
    audio: torch.Tensor  # (R, D_w2c) L2-normalised Wav2CLIP embeddings of the val audios
    frames: torch.Tensor  # (R, D_clip) L2-normalised clip_eval embeddings of the val frames
    fid: torch.Tensor  # (R, D_fid) FID features of the val frames

    def row(self, clip_id: str) -> int:
        return self.clip_ids.index(clip_id)


def compute_references(cfg, manifest: str | Path, out: str | Path, index_out: str | Path) -> References:
    """Embed the validation clips of ``manifest`` with the evaluation models and write the cache."""
    from sonic import registry
    from sonic.evaluation.clip_scores import image_features
    from sonic.metrics.models import wav2clip_features

    table = read_csv(manifest)
    val = table[table["split"] == "val"].reset_index(drop=True)
    if len(val) < 2:
        raise ValueError(f"{manifest}: {len(val)} validation clip(s); the metrics need at least 2 references")
    wav2clip = registry.load_wav2clip(cfg)
    n = int(AUDIO_SECONDS * wav2clip.sample_rate)
    waves = torch.from_numpy(np.stack([fixed_length(load_audio(p, wav2clip.sample_rate), n) for p in val["audio"]]))
    audio = wav2clip_features(wav2clip, waves)
    clip_eval = registry.load_clip(cfg, "clip_eval")
    frames = load_images(val["frame"].astype(str).tolist())
    frame_emb = image_features(clip_eval, frames)
    fid = batched(feature_network(cfg, clip_eval), frames)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file({"audio": audio.contiguous(), "frames": frame_emb.contiguous(), "fid": fid.contiguous()}, str(out),
              metadata={"wav2clip": str(cfg.models.wav2clip), "clip_eval": str(cfg.models.clip_eval),
                        "fid_features": str(cfg.models.fid_features or cfg.models.clip_eval)})
    write_csv(pd.DataFrame({"row": np.arange(len(val)), "clip_id": val["clip_id"].astype(str),
                            "label": val["label"].astype(str)}), index_out)
    log.info("references %s: %d val clips", out, len(val))
    return load_references(out, index_out)


def load_references(path: str | Path, index: str | Path) -> References:
    tensors = load_file(str(path))
    idx = read_csv(index)
    if len(idx) != len(tensors["audio"]):
        raise ValueError(f"{index}: {len(idx)} rows but {path} holds {len(tensors['audio'])} references")
    return References(idx["clip_id"].astype(str).tolist(), idx["label"].astype(str).tolist(), tensors["audio"],
                      tensors["frames"], tensors["fid"])
