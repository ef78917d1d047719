"""Bootstrap intervals of the per-image metrics, resampling evaluation clips (the images of one clip, its seeds or
its edited sources, stay together), and paired differences of two methods scored on the same images.

A metric here is the mean of per-image values (AIS and IIS per image, AIC and SAC as 0/1 hits); resampling clips
with replacement weighs each resampled clip by its number of images, so the bootstrap statistic is the metric of the
resampled image set. Percentile intervals (Efron & Tibshirani 1993, ch. 13), deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PER_IMAGE_METRICS = ("AIS", "AIC", "SAC", "IIS")  # the metrics that are means over images (FID is not)


@dataclass(frozen=True)
class Interval:
    value: float  # the metric on the images as scored
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _cluster_sums(values: np.ndarray, clusters: Sequence) -> tuple[np.ndarray, np.ndarray]:
    keys, inverse = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(keys))
    counts = np.bincount(inverse, minlength=len(keys)).astype(float)
    return sums, counts


def resampled_means(values: Sequence[float], clusters: Sequence, samples: int = 2000, seed: int = 0) -> np.ndarray:
    """The mean of ``values`` in each of ``samples`` resamplings of the clusters (``clusters[i]``: the evaluation
    clip of image ``i``); their standard deviation is the metric's bootstrap standard error."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) != len(clusters) or not len(values):
        raise ValueError(f"need one cluster per value, got {values.shape} values and {len(clusters)} clusters")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    sums, counts = _cluster_sums(values, clusters)
    picks = np.random.default_rng(seed).integers(0, len(sums), size=(samples, len(sums)))
    return sums[picks].sum(axis=1) / counts[picks].sum(axis=1)


def cluster_bootstrap(values: Sequence[float], clusters: Sequence, samples: int = 2000, level: float = 0.95,
                      seed: int = 0) -> Interval:
    """The mean of ``values`` and its ``level`` percentile interval over ``samples`` resamplings of the clusters
    (``clusters[i]``: the evaluation clip of image ``i``)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    stats = resampled_means(values, clusters, samples, seed)
    values = np.asarray(values, dtype=np.float64)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    mean = float(values.mean())
    # a constant metric: every resample equals it (quantiles of equal floats can differ in the last bit)
    if np.all(values == values[0]):
        lo = hi = mean
    return Interval(mean, float(lo), float(hi))


def paired_difference(a: Sequence[float], b: Sequence[float], clusters: Sequence, samples: int = 2000,
                      level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of ``a - b`` over images scored for both methods (``a[i]``, ``b[i]``: the same clip and seed) and its
    cluster-bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} vs {b.shape}")
    return cluster_bootstrap(a - b, clusters, samples, level, seed)
