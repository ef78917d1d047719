"""Bootstrap intervals of the per-image metrics, resampling evaluation clips (the images of one clip, its seeds or
its edited sources, stay together), paired differences of two methods scored on the same images, and FID's interval
(:func:`fid_bootstrap`, a bootstrap over the generated and the real images).

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


# ---- FID ----------------------------------------------------------------------------------------------------------
def _frechet_from_grams(k_gg: np.ndarray, k_rr: np.ndarray, k_gr: np.ndarray, w_g: np.ndarray, w_r: np.ndarray
                        ) -> np.ndarray:
    """FIDs (S,) of S weighted sets from the Gram matrices of the generated (N) and real (M) features: ``k_gg``
    (N, N), ``k_rr`` (M, M), ``k_gr`` (N, M), and the times each image is counted, ``w_g`` (S, N), ``w_r`` (S, M).

    FID = |m_g - m_r|^2 + tr C_g + tr C_r - 2 tr (C_g C_r)^(1/2), covariances with n - 1 as torchmetrics'. With the
    weighted centred rows A (of the generated) and B (of the real), C_g = A'A / (n_g - 1) and C_r = B'B / (n_r - 1),
    and the eigenvalues of C_g C_r are the squared singular values of A B' over (n_g - 1)(n_r - 1): everything comes
    from inner products of images, whatever the feature dimension (2048 for the Inception)."""
    n_g, n_r = w_g.sum(axis=1), w_r.sum(axis=1)  # (S,)
    q_gg = ((w_g @ k_gg) * w_g).sum(axis=1)
    q_rr = ((w_r @ k_rr) * w_r).sum(axis=1)
    w_g_k = w_g @ k_gr  # (S, M)
    q_gr = (w_g_k * w_r).sum(axis=1)
    means = q_gg / n_g**2 + q_rr / n_r**2 - 2 * q_gr / (n_g * n_r)
    traces = (w_g @ np.diag(k_gg) - q_gg / n_g) / (n_g - 1) + (w_r @ np.diag(k_rr) - q_rr / n_r) / (n_r - 1)
    # inner products of the centred images: k_gr - <x_g, m_r> - <m_g, x_r> + <m_g, m_r>
    centred = (k_gr[None] - ((w_r @ k_gr.T) / n_r[:, None])[:, :, None] - (w_g_k / n_g[:, None])[:, None, :]
               + (q_gr / (n_g * n_r))[:, None, None])  # (S, N, M)
    if k_gr.shape[0] <= k_gr.shape[1]:  # A B' (A B')' on the smaller side
        gram = (centred * w_r[:, None, :]) @ centred.transpose(0, 2, 1) * np.sqrt(w_g[:, :, None] * w_g[:, None, :])
    else:
        gram = (centred * w_g[:, :, None]).transpose(0, 2, 1) @ centred * np.sqrt(w_r[:, :, None] * w_r[:, None, :])
    roots = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None)).sum(axis=1) / np.sqrt((n_g - 1) * (n_r - 1))
    return means + traces - 2 * roots


def fid_bootstrap(generated, real, clusters: Sequence | None = None, samples: int = 2000, level: float = 0.95,
                  seed: int = 0) -> Interval:
    """FID of (N, D) generated and (M, D) real features and its ``level`` bootstrap interval **over images**.

    Each of ``samples`` resamplings draws the generated images by cluster (``clusters[i]``: the evaluation clip of
    image ``i``, so a clip's seeds stay together, as for the other metrics; None: each image its own) and,
    independently, the real images one by one (they are a sample of the dataset's frames too), with replacement,
    and recomputes FID on the two resampled sets.

    FID is biased upward by its finite image sets (their means and covariances scatter), and a resampled set, with
    its duplicates, is biased more: the resampled FIDs lie above the FID they resample, so their percentiles do not
    bracket it. The interval is therefore the standard normal one, ``F -/+ z * SE`` with the standard deviation of
    the resampled FIDs as SE (Efron & Tibshirani 1993), clipped at 0: it gives the scatter of FID at these image
    counts, which is what comparing two rows of one table needs; it does not remove the bias, so it is not an
    interval for the FID of infinitely many images. The value is F itself (the number of
    :func:`sonic.metrics.fid.fid_from_features`). It covers the sampling of images only, not retraining."""
    from statistics import NormalDist

    gen = np.asarray(generated, dtype=np.float64)
    ref = np.asarray(real, dtype=np.float64)
    if gen.ndim != 2 or ref.ndim != 2 or gen.shape[1] != ref.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {gen.shape} and {ref.shape}")
    if min(len(gen), len(ref)) < 2:
        raise ValueError(f"FID needs at least 2 feature rows per set, got {len(gen)} and {len(ref)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    clusters = range(len(gen)) if clusters is None else clusters
    if len(clusters) != len(gen):
        raise ValueError(f"need one cluster per generated image, got {len(clusters)} for {len(gen)}")
    _, inverse = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    members = np.zeros((inverse.max() + 1, len(gen)))  # (K, N): the images of cluster k
    members[inverse, np.arange(len(gen))] = 1.0
    offset = ref.mean(axis=0)  # FID is translation invariant; centred features keep the Gram matrices well scaled
    gen, ref = gen - offset, ref - offset
    grams = gen @ gen.T, ref @ ref.T, gen @ ref.T
    value = float(_frechet_from_grams(*grams, np.ones((1, len(gen))), np.ones((1, len(ref))))[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // (len(gen) * len(ref)))  # resamplings per batch: (chunk, N, M) floats in memory
    stats = []
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        picks = rng.integers(0, len(members), size=(n, len(members)))
        w_g = np.stack([np.bincount(p, minlength=len(members)) for p in picks]) @ members  # (n, N)
        w_r = np.stack([np.bincount(p, minlength=len(ref))
                        for p in rng.integers(0, len(ref), size=(n, len(ref)))]).astype(np.float64)  # (n, M)
        stats.append(_frechet_from_grams(*grams, w_g, w_r))
    half = NormalDist().inv_cdf((1 + level) / 2) * float(np.std(np.concatenate(stats), ddof=1))
    return Interval(value, max(0.0, value - half), value + half)
