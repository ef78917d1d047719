"""SAC, shape accuracy: a judgement of an image's class that its colour alone cannot satisfy (docs/evaluation.md).

AIC asks a CLIP which label an image shows; in the demo's synthetic world a class is also a background colour, so a
generator that paints the right colour and nothing else scores on AIC. SAC asks a linear classifier that sees only
the arrangement of edges:

* :func:`shape_features` reduces an image to its luminance (ITU-R BT.601) at ``size`` x ``size`` and standardises
  it (subtract the image's mean, divide by its standard deviation). A uniform field of any colour becomes the zero
  image, whose features are zeros: every colour gives the same features, so colour cannot select a class. A
  global change of colour, brightness or contrast that maps the luminance affinely (``a * Y + b``, ``a`` != 0)
  leaves the standardised image, and so the features, unchanged up to rounding; HOG's orientations are unsigned,
  so even inverting the contrast (a dark shape on a light ground or a light one on a dark ground) does not move
  them. What remains is where the edges are and which way they run: a histogram of oriented gradients (Dalal &
  Triggs 2005; :func:`skimage.feature.hog`: 9 unsigned orientations, 8 x 8-pixel cells, 2 x 2-cell blocks, L2-Hys
  block normalisation, which makes each block independent of local contrast) and, because block normalisation
  makes a faint edge look like a strong one, a coarse 4 x 4 grid of the mean gradient magnitude of the
  standardised luminance (where the strong edges are).
* Sharpness is not its business (FID judges that): it is fitted on each training frame and on the same frame
  block-averaged over 2 x 2 and 4 x 4 pixels and interpolated back (:func:`coarser_views`). Fitted on sharp frames
  alone, it called a 4 x 4-averaged RAVDESS validation face, in which eyebrows and mouth are still plain to a
  person, right 25 % of the time (chance 17 %); fitted with the coarser views, 100 %, and 96-100 % of the sharp
  validation frames stay right (Greatest Hits, Landscape, RAVDESS of the demo).
* :class:`ShapeClassifier` standardises those features and fits a multinomial logistic regression (scikit-learn,
  lbfgs) on real frames with their classes; prediction is a matrix product with the stored tensors (no
  scikit-learn needed), so a saved classifier loads wherever torch does.

What it cannot see, and what it counts: it is fitted on the dataset's real training frames, so it measures whether
a generated image has the edge layout of its class's frames, not whether it is a good image; it is blind to hue and
to anything drawn in the same luminance as its surroundings (an isoluminant shape is invisible to it); texture is
edges too, so a class's texture counts as its "shape"; it sees 64 x 64 pixels. Its accuracy on the real validation
frames (``SAC_real`` in the score files) is its ceiling: a generator cannot be judged more precisely than that.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.feature import hog

log = logging.getLogger(__name__)

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance weights of R, G, B
FLAT_STD = 1e-3  # a luminance standard deviation below this (a quarter of one 8-bit grey level) is a flat image
HOG_ORIENTATIONS = 9  # unsigned, 0-180 degrees
HOG_CELL = 8  # pixels per cell side
HOG_BLOCK = 2  # cells per block side
GRID = 4  # the gradient-magnitude grid is GRID x GRID regions
MAX_ITER = 5000  # lbfgs iterations; the fit logs a warning if it stops before converging
VIEW_FACTORS = (2, 4)  # the classifier also sees each training frame block-averaged by these factors (coarser_views)
KEYS = ("mean", "scale", "coef", "intercept", "size")  # to_tensors(): shape_<key>


def standardised_luminance(images: torch.Tensor, size: int = 64) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, size, size) float64: the luminance at ``size`` x ``size`` (antialiased bilinear
    resize), each image minus its mean and divided by its standard deviation; a flat image (standard deviation below
    :data:`FLAT_STD`) is all zeros."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if size < 2 * HOG_CELL or size % HOG_CELL or size % GRID:
        raise ValueError(f"size must be a multiple of {HOG_CELL} and of {GRID}, at least {2 * HOG_CELL}; got {size}")
    x = images.detach().cpu().double()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    luma = torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA, dtype=x.dtype))  # (N, size, size)
    mean = luma.mean(dim=(1, 2), keepdim=True)
    std = luma.std(dim=(1, 2), unbiased=False, keepdim=True)
    flat = std < FLAT_STD
    return torch.where(flat, torch.zeros_like(luma), (luma - mean) / torch.where(flat, torch.ones_like(std), std))


def _features(y: np.ndarray) -> np.ndarray:
    """HOG + gradient-magnitude grid of one standardised (size, size) luminance image."""
    h = hog(y, orientations=HOG_ORIENTATIONS, pixels_per_cell=(HOG_CELL, HOG_CELL),
            cells_per_block=(HOG_BLOCK, HOG_BLOCK), block_norm="L2-Hys", feature_vector=True)
    gy, gx = np.gradient(y)
    magnitude = np.hypot(gx, gy)  # (size, size)
    s = y.shape[0] // GRID
    grid = magnitude.reshape(GRID, s, GRID, s).mean(axis=(1, 3)).ravel()  # (GRID * GRID,)
    return np.concatenate([h, grid])


def shape_features(images: torch.Tensor, size: int = 64) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] -> (N, D) float32 colour-free shape features (module docstring): HOG of the
    standardised luminance at ``size`` x ``size`` and a 4 x 4 grid of its mean gradient magnitude. D = 1780 at
    size 64 (7 x 7 blocks x 2 x 2 cells x 9 orientations + 16). A flat image of any colour gives zeros."""
    luma = standardised_luminance(images, size).numpy()
    if not len(luma):
        return torch.zeros(0, feature_dim(size))
    return torch.from_numpy(np.stack([_features(y) for y in luma])).float()


def feature_dim(size: int = 64) -> int:
    blocks = size // HOG_CELL - HOG_BLOCK + 1
    return blocks * blocks * HOG_BLOCK * HOG_BLOCK * HOG_ORIENTATIONS + GRID * GRID


def coarser_views(images: torch.Tensor, factors: Sequence[int] = VIEW_FACTORS) -> torch.Tensor:
    """(N, 3, H, W) -> (len(factors) * N, 3, H, W): each image averaged over ``f`` x ``f`` blocks and interpolated
    back linearly to its size, for every ``f`` of ``factors`` (factor-major). The classifier is fitted on these
    beside the frames themselves, so it judges where the edges are, not how sharp they are."""
    h, w = images.shape[-2:]
    views = [F.interpolate(F.avg_pool2d(images, f), size=(h, w), mode="bilinear", align_corners=False)
             for f in factors if h % f == 0 and w % f == 0]
    return torch.cat(views) if views else images[:0]


def file_features(paths: Sequence[str | Path], resolution: int, size: int = 64, batch_size: int = 32,
                  progress: bool = False, desc: str = "shape features",
                  views: Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`shape_features` of image files seen as generated images are (resized on the shorter side and
    centre-cropped to ``resolution``, :func:`sonic.images.image_batches`), ``batch_size`` at a time so memory does
    not grow with the number of files: (N, D)."""
    from tqdm.auto import tqdm

    from sonic.images import image_batches

    out, rows = [torch.zeros(0, feature_dim(size))], [torch.zeros(0, dtype=torch.long)]
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress)
    done = 0
    for images in image_batches(list(paths), resolution, batch_size):
        index = torch.arange(done, done + len(images))
        coarse = coarser_views(images, views)
        out += [shape_features(images, size), shape_features(coarse, size)]
        rows += [index, index.repeat(len(coarse) // len(images))]
        done += len(images)
        bar.update(len(images))
    bar.close()
    return torch.cat(out), torch.cat(rows)


@dataclass(frozen=True)
class ShapeClassifier:
    """A multinomial logistic regression on standardised :func:`shape_features` (module docstring)."""

    labels: list[str]  # class i of the rows of coef
    mean: torch.Tensor  # (D,) feature means of the training images (the standardiser)
    scale: torch.Tensor  # (D,) their standard deviations, 1 where a feature is constant
    coef: torch.Tensor  # (C, D) on standardised features
    intercept: torch.Tensor  # (C,)
    size: int = 64  # the side the images are reduced to

    @classmethod
    def fit(cls, images: torch.Tensor, labels: list[str], size: int = 64, c: float = 1.0,
            seed: int = 0) -> ShapeClassifier:
        """Fit on (N, 3, H, W) images in [0, 1] with their ``labels`` (at least 2 classes; a class may have one
        image), and on their :func:`coarser_views`. ``c``: the inverse L2 regularisation strength of scikit-learn's
        ``LogisticRegression``."""
        coarse = coarser_views(images)
        features = torch.cat([shape_features(images, size), shape_features(coarse, size)])
        labels = list(labels) * (len(features) // max(1, len(images)))
        return cls.fit_features(features, labels, size, c, seed)

    @classmethod
    def fit_features(cls, features: torch.Tensor, labels: list[str], size: int = 64, c: float = 1.0,
                     seed: int = 0) -> ShapeClassifier:
        """:meth:`fit` on precomputed (N, D) :func:`shape_features` (of images reduced to ``size``), so a large
        training set can be read in batches (:func:`file_features`). Deterministic: lbfgs from zeros."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        labels = [str(lab) for lab in labels]
        if features.dim() != 2 or len(features) != len(labels):
            raise ValueError(f"need (N, D) features and N labels, got {tuple(features.shape)} and {len(labels)}")
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError(f"a shape classifier needs images of at least 2 classes, got {len(classes)}: {classes}")
        x = features.double().numpy()
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-12] = 1.0
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit((x - mean) / scale, labels)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.warning("shape classifier: lbfgs did not converge in %d iterations", MAX_ITER)
        coef, intercept = model.coef_, model.intercept_
        if len(classes) == 2:  # scikit-learn keeps one row for two classes: p(class 1) = sigmoid(w x + b)
            coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
        mean, scale, coef, intercept = (torch.from_numpy(np.ascontiguousarray(a)).float()
                                        for a in (mean, scale, coef, intercept))  # C order, as stored and loaded
        return cls([str(k) for k in model.classes_], mean, scale, coef, intercept, size)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) shape features -> (N, C) class scores (float64)."""
        if features.dim() != 2 or features.shape[1] != self.coef.shape[1]:
            raise ValueError(f"features must be (N, {self.coef.shape[1]}), got {tuple(features.shape)}")
        z = (features.double() - self.mean.double()) / self.scale.double()  # (N, D)
        return z @ self.coef.double().T + self.intercept.double()

    def predict_features(self, features: torch.Tensor) -> list[str]:
        return [self.labels[int(k)] for k in self.logits(features).argmax(dim=1)]

    def predict(self, images: torch.Tensor) -> list[str]:
        """The class of each (N, 3, H, W) image in [0, 1]."""
        return self.predict_features(shape_features(images, self.size))

    def accuracy(self, images: torch.Tensor, labels: list[str]) -> float:
        """The fraction of ``images`` predicted as their ``labels``."""
        return share_correct(self.predict(images), labels)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """``shape_mean``, ``shape_scale``, ``shape_coef``, ``shape_intercept``, ``shape_size``: tensors to store
        beside others in one safetensors file; the label order is stored separately (:meth:`from_tensors`)."""
        values = (self.mean, self.scale, self.coef, self.intercept, torch.tensor(self.size, dtype=torch.int64))
        return {f"shape_{k}": v.contiguous() for k, v in zip(KEYS, values)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], labels: list[str]) -> ShapeClassifier:
        """The classifier of :meth:`to_tensors`' tensors (other keys of ``tensors`` are ignored, a ``shape_`` key
        missing or unexpected is an error) with its ``labels`` in row order."""
        ours = {k: v for k, v in tensors.items() if k.startswith("shape_")}
        expected = {f"shape_{k}" for k in KEYS}
        if set(ours) != expected:
            raise ValueError(f"shape classifier tensors: missing {sorted(expected - set(ours))}, "
                           f"unexpected {sorted(set(ours) - expected)}")
        mean, scale, coef, intercept = (ours[f"shape_{k}"] for k in KEYS[:4])
        c, d = coef.shape if coef.dim() == 2 else (-1, -1)
        if (c, mean.shape, scale.shape, intercept.shape) != (len(labels), (d,), (d,), (c,)):
            raise ValueError(f"shape classifier tensors disagree: coef {tuple(coef.shape)}, mean {tuple(mean.shape)}, "
                             f"scale {tuple(scale.shape)}, intercept {tuple(intercept.shape)}, {len(labels)} labels")
        return cls([str(lab) for lab in labels], mean, scale, coef, intercept, int(ours["shape_size"]))


def share_correct(predicted: list[str], labels: list[str]) -> float:
    """The fraction of ``predicted`` equal to ``labels``."""
    if len(predicted) != len(labels) or not labels:
        raise ValueError(f"{len(predicted)} predictions for {len(labels)} labels")
    return sum(p == str(t) for p, t in zip(predicted, labels)) / len(labels)


def fit_frames(paths: Sequence[str | Path], labels: list[str], resolution: int, batch_size: int = 32,
               progress: bool = False) -> tuple[ShapeClassifier | None, str]:
    """A :class:`ShapeClassifier` fitted on the frames at ``paths`` (read at the evaluation ``resolution``, in
    batches) with their ``labels``, and a note; None and the reason when they hold fewer than 2 classes."""
    classes = sorted(set(map(str, labels)))
    if len(classes) < 2:
        return None, f"the training frames hold {len(classes)} class(es) {classes}; SAC needs at least 2"
    features, rows = file_features(paths, resolution, batch_size=batch_size, progress=progress,
                                   desc="shape: train frames", views=VIEW_FACTORS)
    labels = [str(labels[int(i)]) for i in rows]
    shape = ShapeClassifier.fit_features(features, labels)
    return shape, (f"fitted on {len(paths)} training frames of {len(classes)} classes, each also at 1/"
                   + ", 1/".join(map(str, VIEW_FACTORS)) + " resolution")
