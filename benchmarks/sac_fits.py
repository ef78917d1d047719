"""How much SAC depends on how its classifier is fitted: SAC of every method's generated images under several fits.

SAC's linear classifier is fitted on real training frames (and their coarser views, ``sonic.metrics.shape``). A
generated image that is off the real frames' distribution (blurred, blocky, noisy) is classified by extrapolation,
and another fit that is just as good on real frames may extrapolate differently. This script refits the classifier
under a fixed family of variants, each judged first on the real validation frames (its ceiling), and prints each
method's SAC under each: where the spread across fits is wide, a single SAC number on generated images carries a
classifier variance that no interval of the tables shows.

The variants (declared here, not chosen after looking): the evaluation's fit (frames + 2x and 4x block averages),
the same features after a Gaussian blur of sigma 1 or 1.5 pixels (fit and judgement alike), and each of those three
fitted also on the frames with additive low-frequency noise (levels 0.05 and 0.1 on 2- and 4-pixel cells).

    python benchmarks/sac_fits.py [--results results] [--datasets greatest_hits ravdess] [--methods ...]

Run it in a built demo folder (after ``make demo``); it reads ``results/data/<dataset>/manifest.csv`` and
``results/generated/<method>/<dataset>/manifest.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from sonic.data.tables import read_csv, read_manifest
from sonic.images import load_images
from sonic.metrics.shape import ShapeClassifier, coarser_views, shape_features

BLURS = (0.0, 1.0, 1.5)  # Gaussian sigma in pixels at the evaluation resolution
NOISE = ((0.05, 2), (0.05, 4), (0.1, 2), (0.1, 4))  # (level, cell side in pixels) of the noise views


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (N, 3, H, W) images (reflected borders); sigma 0 leaves them as they are."""
    if sigma <= 0:
        return images
    k = int(2 * round(3 * sigma) + 1)
    g = torch.exp(-((torch.arange(k) - k // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(images.dtype)
    x = F.pad(images, (k // 2,) * 4, mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, k).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(x, g.view(1, 1, k, 1).repeat(3, 1, 1, 1), groups=3)


def noise_views(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The images with additive grey noise drawn on a coarse grid and interpolated (one view per :data:`NOISE`)."""
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    views = []
    for level, cell in NOISE:
        z = torch.randn(n, 1, h // cell, w // cell, generator=gen) * level
        views.append((images + F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)).clamp(0, 1))
    return torch.cat(views)


def fits(train: torch.Tensor, labels: list[str]):
    """(name, sigma, classifier) for every variant."""
    for noisy in (False, True):
        views = [train, coarser_views(train)] + ([noise_views(train)] if noisy else [])
        fit = torch.cat(views)
        reps = len(fit) // len(train)
        for sigma in BLURS:
            name = f"blur {sigma:g}" + (" + noise" if noisy else "")
            yield name, sigma, ShapeClassifier.fit_features(shape_features(blur(fit, sigma)), labels * reps)


def accuracy(classifier: ShapeClassifier, sigma: float, images: torch.Tensor, labels: list[str]) -> float:
    predicted = classifier.predict_features(shape_features(blur(images, sigma)))
    return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--datasets", nargs="+", default=None, help="default: every dataset with generated images")
    ap.add_argument("--methods", nargs="+", default=None, help="default: every folder under results/generated")
    ap.add_argument("--resolution", type=int, default=64, help="the evaluation resolution")
    args = ap.parse_args()
    root = Path(args.results)
    base = root.resolve().parent  # manifests hold paths relative to the run's folder
    methods = args.methods or sorted(p.name for p in (root / "generated").iterdir() if p.is_dir())
    datasets = args.datasets or sorted({p.parent.name for m in methods
                                        for p in (root / "generated" / m).glob("*/manifest.csv")})
    print(f"{'dataset':<14} {'fit':<16} {'real val':>8} " + " ".join(f"{m[:18]:>18}" for m in methods))
    for dataset in datasets:
        manifest = read_manifest(root / "data" / dataset / "manifest.csv", columns=("clip_id", "split", "label"))
        train = manifest[manifest["split"] == "train"]
        val = manifest[(manifest["split"] == "val") & manifest["eval"].astype(bool)]
        x_train = load_images([str(base / f) for f in train["frame"]], args.resolution)
        x_val = load_images([str(base / f) for f in val["frame"]], args.resolution)
        generated = {}
        for m in methods:
            path = root / "generated" / m / dataset / "manifest.csv"
            if path.is_file():
                table = read_csv(path)
                generated[m] = (load_images([str(base / f) for f in table["path"]], args.resolution),
                                table["label"].astype(str).tolist())
        spread = {m: [] for m in generated}
        for name, sigma, classifier in fits(x_train, train["label"].astype(str).tolist()):
            row = [accuracy(classifier, sigma, x_val, val["label"].astype(str).tolist())]
            for m in methods:
                if m in generated:
                    spread[m].append(accuracy(classifier, sigma, *generated[m]))
            cells = " ".join(f"{spread[m][-1]:>18.3f}" if m in generated else f"{'-':>18}" for m in methods)
            print(f"{dataset:<14} {name:<16} {row[0]:>8.3f} {cells}", flush=True)
        cells = " ".join(f"{min(s):>8.3f}-{max(s):<9.3f}" if s else f"{'-':>18}" for s in
                         (spread.get(m, []) for m in methods))
        print(f"{dataset:<14} {'range':<16} {'':>8} {cells}")


if __name__ == "__main__":
    main()
