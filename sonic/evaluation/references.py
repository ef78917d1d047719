"""Per-dataset evaluation references, computed once and cached (docs/evaluation.md, supp. §2.1).

For every clip of the validation split: the Wav2CLIP embedding of its audio (the AIS references), the
``clip_eval`` embedding of its frame (the IIS references and ground truth) and the FID features of its frame (the
FID real set). Frames are seen at the evaluation size, as generated images are: resized on the shorter side and
centre-cropped to ``generation.resolution`` (never squashed), and processed in batches, so memory does not grow
with the number of frames or their native size. One safetensors file (``audio``, ``frames``, ``fid``; row i =
clip i) plus an index CSV (row, clip_id, label), so every method's scoring reads the same numbers.

The same file holds SAC's shape classifier (:mod:`sonic.metrics.shape`), fitted on the frames of the *train* split
(read the same way) with their labels: its tensors (``shape_*``), and in the metadata its label order
(``shape_labels``, JSON), its accuracy on the real validation frames (``shape_real``, the ceiling of SAC) and a note
(``shape_note``: what it was fitted on, or why there is none: a train split of fewer than 2 classes).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sonic.audio import load_audio
from sonic.data.tables import read_csv, read_manifest, write_csv
from sonic.images import image_batches
from sonic.metrics.shape import ShapeClassifier, fit_frames, shape_features, share_correct

log = logging.getLogger(__name__)

AUDIO_SECONDS = 10.0  # Wav2CLIP input length; shorter clips are repeated to length (as in its distillation)


def fixed_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Crop to ``samples`` or repeat the clip until it is that long."""
    return np.resize(wave, samples) if len(wave) < samples else wave[:samples]


def feature_network(cfg):
    """The FID feature network that ``models.fid_features`` names (docs/evaluation.md): a folder written by
    ``sonic pretrain fid`` (the demo's miniature FID network; a folder of another format is an error naming it) or
    the FID Inception weights file (paper profile).

    It must be an independent judge (SPEC §7): unset, or the location of a model that a generator conditions on or
    that AIS/AIC/IIS use, is a :class:`~sonic.config.ConfigError` naming the keys (:meth:`ModelPaths.fid_network`)."""
    from sonic.metrics.fid import FidNetFeatures, InceptionFeatures

    location = cfg.models.fid_network(cfg.source)
    return FidNetFeatures(location) if Path(location).is_dir() else InceptionFeatures(location)


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
    shape: ShapeClassifier | None = None  # SAC's classifier, fitted on the train frames (None: < 2 train classes)
    shape_real: float | None = None  # its accuracy on the val frames: SAC's ceiling
    shape_note: str = ""  # what it was fitted on, or why there is none

    def row(self, clip_id: str) -> int:
        return self.clip_ids.index(clip_id)


def compute_references(cfg, manifest: str | Path, out: str | Path, index_out: str | Path, batch_size: int = 32,
                       progress: bool = True) -> References:
    """Embed the validation clips of ``manifest`` with the evaluation models, fit SAC's shape classifier on the
    train frames and write the cache; frames and audio are read ``batch_size`` at a time."""
    from sonic.metrics.clip_scores import image_features
    from sonic.metrics.models import wav2clip_features
    from sonic.models import registry

    table = read_manifest(manifest)
    val = table[table["split"] == "val"].reset_index(drop=True)
    if len(val) < 2:
        raise ValueError(f"{manifest}: {len(val)} validation clip(s); the metrics need at least 2 references")
    wav2clip = registry.load_wav2clip(cfg)
    n = int(AUDIO_SECONDS * wav2clip.sample_rate)
    audio_paths = val["audio"].astype(str).tolist()
    audio = torch.cat([
        wav2clip_features(wav2clip, torch.from_numpy(np.stack([fixed_length(load_audio(p, wav2clip.sample_rate), n)
                                                               for p in audio_paths[i : i + batch_size]])))
        for i in range(0, len(audio_paths), batch_size)
    ])
    clip_eval = registry.load_clip(cfg, "clip_eval")
    fid_net = feature_network(cfg)
    train = table[table["split"] == "train"]
    shape, note = fit_frames(train["frame"].astype(str).tolist(), train["label"].astype(str).tolist(),
                             cfg.generation.resolution, batch_size, progress)
    frame_emb, fid, shape_val = [], [], []
    bar = tqdm(total=len(val), desc="reference frames", unit="frame", disable=not progress)
    for frames in image_batches(val["frame"].astype(str).tolist(), cfg.generation.resolution, batch_size):
        frame_emb.append(image_features(clip_eval, frames))
        fid.append(batched(fid_net, frames))
        if shape is not None:
            shape_val += shape.predict_features(shape_features(frames, shape.size))
        bar.update(len(frames))
    bar.close()
    frame_emb, fid = torch.cat(frame_emb), torch.cat(fid)
    metadata = {"wav2clip": str(cfg.models.wav2clip), "clip_eval": str(cfg.models.clip_eval),
                "fid_features": str(cfg.models.fid_features), "shape_note": note}
    tensors = {"audio": audio.contiguous(), "frames": frame_emb.contiguous(), "fid": fid.contiguous()}
    if shape is None:
        log.warning("references %s: no shape classifier, SAC will be null: %s", out, note)
    else:
        real = share_correct(shape_val, val["label"].astype(str).tolist())
        unseen = sorted(set(table["label"].astype(str)) - set(shape.labels))
        if unseen:
            note += f"; classes without training frames, never predicted: {unseen}"
        metadata |= {"shape_labels": json.dumps(shape.labels), "shape_real": repr(real), "shape_note": note}
        tensors |= shape.to_tensors()
        log.info("references %s: shape classifier %s; accuracy on the %d real val frames %.3f (SAC's ceiling; "
                 "chance %.3f)", out, note, len(val), real, 1 / len(shape.labels))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    write_csv(pd.DataFrame({"row": np.arange(len(val)), "clip_id": val["clip_id"].astype(str),
                            "label": val["label"].astype(str)}), index_out)
    log.info("references %s: %d val clips", out, len(val))
    return load_references(out, index_out)


def load_references(path: str | Path, index: str | Path) -> References:
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata() or {}
    idx = read_csv(index)
    if len(idx) != len(tensors["audio"]):
        raise ValueError(f"{index}: {len(idx)} rows but {path} holds {len(tensors['audio'])} references")
    if "shape_note" not in metadata:
        raise ValueError(f"{path} was written before SAC's shape classifier existed: delete it and rebuild it "
                         "(`sonic evaluate references`, the eval_references rule)")
    shape, real = None, None
    if "shape_labels" in metadata:
        shape = ShapeClassifier.from_tensors(tensors, json.loads(metadata["shape_labels"]))
        real = float(metadata["shape_real"])
    return References(idx["clip_id"].astype(str).tolist(), idx["label"].astype(str).tolist(), tensors["audio"],
                      tensors["frames"], tensors["fid"], shape, real, metadata["shape_note"])
