"""Miniature FID network for the demo profile (docs/pretrained-models.md; SPEC §7): the analogue of the
ImageNet Inception whose pool features FID compares.

A small CNN (:class:`sonic.metrics.fidnet.FidNet`) trained to classify the train frames of all datasets by
(dataset, label), at the demo resolution, with a random shift (a crop of the border-replicated frame), a horizontal
flip and a share of the frames in grey, so that its features see the shapes and not only the colours (several classes
of the world are also colours; SPEC §6). FID uses its pooled features, not its head. It is trained from scratch on
frames alone, so it shares nothing with the networks a generator conditions on (the miniature CLIP's text tower
inside the SD folder, CLAP) or the CLIP that AIC, IIS and AIS judge with.

Choices, each a :class:`FidNetSettings` field: batches drawn without replacement with weights
``count(class) ** -balance_power`` (the Into-the-Wild tags have one or two clips each), cross-entropy with label
smoothing, AdamW with linear warm-up and cosine decay, weight decay on every parameter of two or more dimensions
(conv and linear weights; BatchNorm and biases not), as the other miniature models.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sonic.demo.pretrain.data import Pair, balanced_weights, load_pairs, warmup_cosine
from sonic.images import load_image
from sonic.metrics.fidnet import FidNet, FidNetConfig, save_fidnet
from sonic.settings import FidNetSettings, for_run
from sonic.training.loop import adamw


def class_name(pair: Pair) -> str:
    return f"{pair.dataset}/{pair.label}"


def greyscale(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> the same images in grey (ITU-R 601 luma in all three channels)."""
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
    return (images * luma).sum(1, keepdim=True).expand_as(images)


def augment(images: torch.Tensor, shift: int, greyscale_prob: float, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the border-replicated (B, 3, S, S) images (up to ``shift`` pixels each way), horizontal
    flip, and grey with probability ``greyscale_prob``, drawn from ``gen``."""
    b, _, s, _ = images.shape
    if shift:
        padded = F.pad(images, (shift,) * 4, mode="replicate")  # (B, 3, S + 2 shift, S + 2 shift)
        dx, dy = torch.randint(0, 2 * shift + 1, (2, b), generator=gen).tolist()
        images = torch.stack([padded[i, :, y : y + s, x : x + s] for i, (x, y) in enumerate(zip(dx, dy, strict=True))])
    flip, grey = torch.rand(2, b, generator=gen) < torch.tensor([[0.5], [greyscale_prob]])
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return torch.where(grey[:, None, None, None], greyscale(images), images)


def _frames(pairs: list[Pair], size: int) -> torch.Tensor:
    """(N, 3, size, size) frames in [0, 1], resized on the shorter side and centre-cropped (the evaluation view)."""
    return torch.from_numpy(np.stack([load_image(p.frame, size) for p in pairs])).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def predict(model: FidNet, images: torch.Tensor, batch: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk).argmax(1) for chunk in images.split(batch)])


def accuracy(model: FidNet, pairs: list[Pair], images: torch.Tensor, classes: list[str], batch: int) -> dict:
    """Top-1 accuracy over the pairs whose class the head knows, per dataset and overall."""
    known = [i for i, p in enumerate(pairs) if class_name(p) in classes]
    if not known:
        return {"overall": None}
    pred = predict(model, images[known], batch).tolist()
    hits = [classes[k] == class_name(pairs[i]) for i, k in zip(known, pred, strict=True)]
    out = {d: float(np.mean([h for i, h in zip(known, hits, strict=True) if pairs[i].dataset == d]))
           for d in sorted({pairs[i].dataset for i in known})}
    return out | {"overall": float(np.mean(hits))}


@torch.no_grad()
def fid_check(model: FidNet, train: list[Pair], train_images: torch.Tensor, val: list[Pair],
              val_images: torch.Tensor, batch: int) -> dict:
    """Per dataset, FID on the network's features between its train and val frames (the same distribution: small)
    and between colour fields (each val frame replaced by its mean colour) and the val frames (what a generator
    that draws colours but no scene would get: large). None where a set has fewer than 2 frames."""
    from sonic.metrics.fid import fid_from_features

    model.eval()

    def features(images: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.features(chunk) for chunk in images.split(batch)]).double()

    out = {}
    for dataset in sorted({p.dataset for p in val}):
        tr = train_images[[i for i, p in enumerate(train) if p.dataset == dataset]]
        va = val_images[[i for i, p in enumerate(val) if p.dataset == dataset]]
        if min(len(tr), len(va)) < 2:
            out[dataset] = None
            continue
        real, fields = features(va), features(va.mean(dim=(2, 3), keepdim=True).expand_as(va))
        out[dataset] = {"train_vs_val": round(fid_from_features(features(tr), real), 2),
                        "colour_fields_vs_val": round(fid_from_features(fields, real), 2)}
    return out


def train_fidnet(train: list[Pair], val: list[Pair], out_dir: Path, settings: FidNetSettings) -> dict:
    """Train the FID network on ``train``, save it to ``out_dir`` with ``quality.json`` (val accuracy, also on
    grey-scale frames: what the features see beyond colour; :func:`fid_check`) and return the quality figures."""
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    s = settings
    classes = sorted({class_name(p) for p in train})
    if len(classes) < 2:
        raise ValueError(f"train_fidnet: needs at least 2 classes in the training pairs, got {classes}")
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    model = FidNet(FidNetConfig(image_size=s.image_size, widths=s.widths, num_classes=len(classes)))
    images = _frames(train, s.image_size)
    targets = torch.tensor([classes.index(class_name(p)) for p in train])
    weights = balanced_weights([class_name(p) for p in train], s.balance_power)
    batch = min(s.batch_size, len(train))

    opt = adamw(model, s.lr, s.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, s.warmup_steps, s.steps))
    losses = []
    model.train()
    for _ in range(s.steps):
        idx = torch.multinomial(weights, batch, replacement=False, generator=gen)
        logits = model(augment(images[idx], s.shift, s.greyscale_prob, gen))
        loss = F.cross_entropy(logits, targets[idx], label_smoothing=s.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    train_cpu, train_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall

    model.eval()
    val_images = _frames(val, s.image_size) if val else images[:0]
    quality = {
        "val_accuracy": accuracy(model, val, val_images, classes, s.eval_batch),
        "val_accuracy_greyscale": accuracy(model, val, greyscale(val_images), classes, s.eval_batch),
        "train_accuracy": accuracy(model, train, images, classes, s.eval_batch),
        "fid_check": fid_check(model, train, images, val, val_images, s.eval_batch),
        "chance": 1 / len(classes),
        "classes": len(classes),
        "n_train": dict(sorted(Counter(p.dataset for p in train).items())),
        "n_val": dict(sorted(Counter(p.dataset for p in val).items())),
        "val_unknown_class": sum(class_name(p) not in classes for p in val),
        "num_features": model.config.num_features,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": s.steps,
        "batch_size": batch,
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
        "threads": torch.get_num_threads(),
        "train_cpu_seconds": round(train_cpu, 2),
        "train_wall_seconds": round(train_wall, 2),
        "settings": asdict(s) | {"widths": list(s.widths)},
    }
    save_fidnet(model, out_dir, classes, seed=s.seed, steps=s.steps)
    (Path(out_dir) / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def main(manifests: list[str], out_dir: str, seed: int = 0, steps: int | None = None,
         threads: int | None = None, settings: FidNetSettings | None = None) -> dict:
    """Train, save and score the miniature FID network on the train / val clips of ``manifests``.

    ``threads``: torch's CPU thread count (the rule's ``threads:``); ``None`` leaves torch's setting alone.
    ``settings``: the recipe (``pretrain.fid``); ``seed`` and ``steps`` (where given) replace its own."""
    if threads is not None:
        torch.set_num_threads(threads)
    settings = for_run(settings or FidNetSettings(), seed, steps)
    train, val = load_pairs(manifests, ("train",)), load_pairs(manifests, ("val",))
    return train_fidnet(train, val, Path(out_dir), settings)
