"""A quick check of a trained model: images generated from held-out audio (no text prompt), classified zero-shot by
a CLIP over the dataset's label strings and, colour-blind, by SAC's shape classifier fitted on the training frames
(:mod:`sonic.metrics.shape`). Not the paper's metrics (those are AIS/AIC/IIS/FID, evaluation stage): a sanity figure
written next to the weights so a broken run shows at once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sonic.config import Config
from sonic.images import load_images
from sonic.metrics.clip_scores import zero_shot
from sonic.metrics.shape import ShapeClassifier, share_correct
from sonic.models import registry
from sonic.models.pipeline import SonicPipeline
from sonic.training.data import ClipSet


def pick_per_class(labels: list[str], per_class: int) -> list[int]:
    """The first ``per_class`` clips of each class, in manifest order."""
    taken: Counter = Counter()
    out = []
    for i, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            out.append(i)
    return out


def audio_to_image_accuracy(cfg: Config, weights: str | Path, clips: ClipSet, labels: list[str],
                            per_class: int = 2, seeds: int = 2, steps: int = 25,
                            shape: ShapeClassifier | None = None, shape_note: str = "") -> dict:
    """Generate ``seeds`` images for ``per_class`` held-out clips of each class and classify them over ``labels``
    (``accuracy``) and with ``shape`` (``SAC``; ``SAC_real``: its accuracy on those clips' real frames, the
    ceiling; null without a classifier, ``SAC_note`` says why)."""
    pipe = SonicPipeline.from_weights(weights, registry.load_stable_diffusion(cfg))
    chosen = pick_per_class(clips.labels, per_class)
    images = pipe(clips.clap[chosen], seeds=list(range(seeds)), num_inference_steps=steps,
                  guidance_scale=cfg.generation.guidance_scale, batch_size=cfg.generation.batch_size, progress=False)
    truth = [clips.labels[i] for i in chosen for _ in range(seeds)]
    predicted = zero_shot(registry.load_clip(cfg, "clip_eval"), images, labels)
    per_label = {lab: [p == t for p, t in zip(predicted, truth) if t == lab] for lab in sorted(set(truth))}
    sac: dict = {"SAC": None, "SAC_per_class": None, "SAC_real": None, "SAC_note": shape_note}
    if shape is not None:
        by_shape = shape.predict(images)
        hits = {lab: [p == t for p, t in zip(by_shape, truth) if t == lab] for lab in sorted(set(truth))}
        frames = load_images([clips.frames[i] for i in chosen], cfg.generation.resolution)
        sac |= {"SAC": share_correct(by_shape, truth),
                "SAC_per_class": {lab: sum(h) / len(h) for lab, h in hits.items()},
                "SAC_real": shape.accuracy(frames, [clips.labels[i] for i in chosen])}
    return {
        "accuracy": sum(p == t for p, t in zip(predicted, truth)) / len(truth),
        "chance": 1 / len(labels),
        "per_class": {lab: sum(h) / len(h) for lab, h in per_label.items()},
        "images": len(truth),
        "steps": steps,
        "confusions": dict(Counter(f"{t} -> {p}" for t, p in zip(truth, predicted) if t != p).most_common(10)),
        **sac,
    }


def write(path: str | Path, result: dict) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
