"""Comparisons across training seeds (docs/evaluation.md#replicates): is a method's difference to the
reference (SonicDiffusion; the ablations: ``full``) a property of the method, or of one training run?

Each method and the reference are trained with the same n training seeds and scored on the same evaluation clips
and seeds. For one metric, ``d_s`` is the method's score minus the reference's of the same training seed s, and the
comparison rests on their mean ``D``. Two sources of error move ``D``:

* **retraining** (and whatever else differs between seeds): estimated by the sample variance ``s^2`` of the ``d_s``,
  so ``s^2 / n`` for their mean;
* **the evaluation clips**, shared by every seed, so their error does not average out over seeds: estimated by
  ``v``, the bootstrap variance of ``D`` over the clips (:func:`clip_variance`, a clip's images of every seed and
  of both methods resampled together, so the pairing is kept).

The interval is ``D -/+ t * sqrt(s^2 / n + v)``, ``t`` the Student quantile with Welch-Satterthwaite degrees of
freedom ``(s^2 / n + v)^2 / ((s^2 / n)^2 / (n - 1))`` (``v`` counted as known): with few seeds and a large
between-seed spread it is the paired t interval over seeds (n - 1 degrees of freedom), with a spread small beside
the clips' error it tends to the clip bootstrap's normal interval. Why not one of them alone: a paired t over seeds
treats the clips as fixed, and would mark a difference that every retraining repeats on these clips but another
draw of clips would not; a bootstrap over clips treats the trained models as fixed, which is what the single-run
tables already do and what retraining contradicted. Why not a bootstrap over seeds too: three seeds have ten
distinct resamplings and a bootstrap variance (n - 1) / n too small. ``s^2`` also contains the part of the
evaluation error that differs between seeds, which ``v`` counts once more, so the interval is slightly
conservative.

A difference is **marked** (▲ above zero, ▼ below) only where every seed's difference has the same strict sign
*and* the interval excludes zero; one seed gives no mark (no spread to estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sonic.metrics.bootstrap import resampled_means


@dataclass(frozen=True)
class SeedComparison:
    differences: tuple[float, ...]  # d_s, in seed order
    mean: float  # D, their mean
    lo: float  # the interval (NaN for fewer than two seeds or without v)
    hi: float
    dof: float  # its degrees of freedom (inf: no between-seed spread)

    @property
    def same_sign(self) -> bool:
        """Every seed's difference strictly above zero, or every one strictly below."""
        d = np.asarray(self.differences)
        return len(d) > 0 and (bool((d > 0).all()) or bool((d < 0).all()))

    @property
    def signs(self) -> str:
        """The sign of each seed's difference, e.g. ``++-`` (``0`` for none)."""
        return "".join("+" if d > 0 else "-" if d < 0 else "0" for d in self.differences)

    @property
    def mark(self) -> str:
        """▲ / ▼ where every seed agrees in sign and the interval lies above / below zero; else empty."""
        if len(self.differences) < 2 or not self.same_sign or np.isnan(self.lo):
            return ""
        return "▲" if self.lo > 0 else ("▼" if self.hi < 0 else "")


def compare_across_seeds(differences: Sequence[float], clip_var: float, level: float = 0.95) -> SeedComparison:
    """The comparison of the module docstring: ``differences[s]`` = method minus reference of training seed s,
    ``clip_var`` = ``v``, the variance of their mean over the evaluation clips (NaN: unknown, so no interval)."""
    from scipy.stats import t

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or not len(d) or np.isnan(d).any():
        raise ValueError(f"need one finite difference per seed, got {list(differences)}")
    if clip_var < 0:
        raise ValueError(f"clip_var must be >= 0, got {clip_var}")
    n, mean = len(d), float(d.mean())
    if n < 2 or np.isnan(clip_var):
        return SeedComparison(tuple(map(float, d)), mean, float("nan"), float("nan"), float("nan"))
    between = float(d.var(ddof=1)) / n
    total = between + clip_var
    dof = float("inf") if between == 0 else total**2 / (between**2 / (n - 1))
    half = float(t.ppf((1 + level) / 2, dof)) * np.sqrt(total)
    return SeedComparison(tuple(map(float, d)), mean, mean - half, mean + half, dof)


def clip_variance(per_seed: Sequence[np.ndarray], clusters: Sequence, samples: int = 2000, seed: int = 0) -> float:
    """``v``: the bootstrap variance over the evaluation clips of the mean over seeds of the per-image differences.
    ``per_seed[s][i]``: method minus reference on image i (the same clip and evaluation seed in every training
    seed) of training seed s; ``clusters[i]``: the clip of image i. Averaging over seeds first resamples a clip's
    images of every seed together."""
    stacked = np.stack([np.asarray(d, dtype=np.float64) for d in per_seed])  # (seeds, images)
    means = resampled_means(stacked.mean(axis=0), clusters, samples, seed)
    return float(means.var(ddof=1))


def interval_variance(value: float, hi: float, level: float) -> float:
    """The variance of a metric implied by its normal interval ``[value - h, value + h]`` (``hi`` = value + h, the
    bound that no clipping at zero touches): ``(h / z)^2``. FID's variance over the images, for ``v``
    (:func:`sonic.metrics.bootstrap.fid_bootstrap`)."""
    from statistics import NormalDist

    return ((hi - value) / NormalDist().inv_cdf((1 + level) / 2)) ** 2
