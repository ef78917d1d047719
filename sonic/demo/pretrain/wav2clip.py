"""Miniature Wav2CLIP (demo profile): an audio ResNet distilled into the miniature CLIP's image space, the way
Wav2CLIP was made (Wu et al. 2022: a contrastive loss between audio embeddings and the frozen CLIP image
embeddings of the paired frames). Saved in the official checkpoint layout (``sonic.models.wav2clip``), so the
AIS metric loads it exactly like the real ``Wav2CLIP.pt``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sonic.audio import load_audio
from sonic.demo.pretrain.data import Pair, load_pairs
from sonic.models.wav2clip import Wav2Clip, save_wav2clip
from sonic.settings import Wav2ClipSettings, for_run
from sonic.training.loop import adamw

log = logging.getLogger(__name__)


def clip_image_embeddings(clip_dir: str | Path, frames: list[str]) -> torch.Tensor:
    """L2-normalised image embeddings of the frames under the (miniature or real) CLIP in ``clip_dir``."""
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    processor = CLIPImageProcessor.from_pretrained(str(clip_dir))
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), 64):
            images = [np.asarray(Image.open(f).convert("RGB")) for f in frames[start : start + 64]]
            pixels = processor(images=images, return_tensors="pt").pixel_values
            feats = model.get_image_features(pixel_values=pixels)
            feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
            out.append(F.normalize(feats, dim=-1))
    return torch.cat(out)


def _waves(pairs: list[Pair], sample_rate: int, seconds: float) -> torch.Tensor:
    """(N, seconds * rate) waveforms, shorter clips repeated to length (as CLAP's "repeatpad")."""
    n = int(seconds * sample_rate)
    rows = []
    for p in pairs:
        w = load_audio(p.audio, sample_rate)
        rows.append(np.resize(w, n) if len(w) < n else w[:n])
    return torch.from_numpy(np.stack(rows))


def retrieval(model: Wav2Clip, waves: torch.Tensor, image_emb: torch.Tensor, labels: list[str]) -> dict:
    """Audio -> image retrieval among the given clips: exact top-1 and class-level top-1."""
    with torch.no_grad():
        audio = F.normalize(model.eval()(waves), dim=-1)
    best = (audio @ image_emb.T).argmax(dim=1).tolist()
    exact = float(np.mean([b == i for i, b in enumerate(best)]))
    by_class = float(np.mean([labels[b] == labels[i] for i, b in enumerate(best)]))
    return {"top1_exact": exact, "top1_class": by_class, "chance_exact": 1 / len(labels),
            "chance_class": float(np.mean([labels.count(lab) / len(labels) for lab in labels]))}


def train_wav2clip(train: list[Pair], val: list[Pair], clip_dir: str | Path, out_file: Path,
                   settings: Wav2ClipSettings) -> dict:
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    cfg = settings.model
    model = Wav2Clip(cfg)
    targets = clip_image_embeddings(clip_dir, [p.frame for p in train])
    if targets.shape[1] != cfg.embed_dim:
        raise ValueError(f"CLIP in {clip_dir} embeds to {targets.shape[1]} but wav2clip.embed_dim is {cfg.embed_dim}")
    waves = _waves(train, cfg.sample_rate, 10.0)
    crop = int(settings.crop_seconds * cfg.sample_rate)
    opt = adamw(model, settings.lr, settings.weight_decay, decay_all=True)
    losses = []
    model.train()
    for step in range(settings.steps):
        idx = torch.randperm(len(train), generator=gen)[: settings.batch_size]
        offsets = torch.randint(0, waves.shape[1] - crop + 1, (len(idx),), generator=gen)
        batch = torch.stack([waves[i, o : o + crop] for i, o in zip(idx.tolist(), offsets.tolist(), strict=True)])
        audio = F.normalize(model(batch), dim=-1)
        logits = audio @ targets[idx].T / settings.temperature  # (B, B)
        # Clips of one class share an image look: count same-label frames as positives too.
        labels = [train[i].label for i in idx.tolist()]
        positive = torch.tensor([[a == b for b in labels] for a in labels], dtype=torch.float32)
        log_p = logits.log_softmax(dim=1)
        loss = -(log_p * positive).sum(1).div(positive.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:  # cosine decay
            g["lr"] = settings.lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / settings.steps))
        losses.append(loss.item())
    train_seconds = (time.perf_counter() - start_wall, time.process_time() - start_cpu)

    val_waves = _waves(val, cfg.sample_rate, 10.0)
    quality = {
        "val": retrieval(model, val_waves, clip_image_embeddings(clip_dir, [p.frame for p in val]),
                         [p.label for p in val]),
        "steps": settings.steps,
        "final_loss": losses[-1] if losses else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_wall_s": round(train_seconds[0], 1),
        "train_cpu_s": round(train_seconds[1], 1),
        "settings": asdict(settings) | {"model": cfg.to_dict()},
    }
    save_wav2clip(model.eval(), out_file)
    (out_file.parent / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    log.info("wav2clip: %s", json.dumps(quality["val"]))
    return quality


def main(manifests: list[str], out_file: str, clip_dir: str, seed: int = 0, steps: int | None = None,
         threads: int | None = None, settings: Wav2ClipSettings | None = None) -> dict:
    """Train, save and score the miniature Wav2CLIP against the CLIP in ``clip_dir``; ``settings``: the recipe
    (``pretrain.wav2clip``), whose seed and steps (where given) ``seed`` and ``steps`` replace."""
    if threads:
        torch.set_num_threads(threads)
    settings = for_run(settings or Wav2ClipSettings(), seed, steps or None)
    train, val = load_pairs(manifests, ("train",)), load_pairs(manifests, ("val",))
    return train_wav2clip(train, val, clip_dir, Path(out_file), settings)
