"""Bootstrap intervals and paired differences (sonic.metrics.bootstrap) on constructed cases."""

import numpy as np
import pytest

from sonic.metrics.bootstrap import cluster_bootstrap, paired_difference, resampled_means


def test_the_interval_of_a_constant_metric_is_a_point():
    for value in (0.0, 1.0, 1 / 3):
        iv = cluster_bootstrap([value] * 12, [i // 2 for i in range(12)])
        assert iv.lo == iv.hi == iv.value == pytest.approx(value, abs=1e-15)


def test_the_interval_covers_the_known_mean_at_its_level():
    """Draws of 40 clips x 3 seeds from Bernoulli(0.6) with a per-clip effect: the 95 % interval covers 0.6 in
    about 95 % of 200 repetitions (and would far less often if the clips were treated as independent images)."""
    rng = np.random.default_rng(1)
    covered = 0
    for rep in range(200):
        effect = rng.normal(0, 0.15, 40)
        p = np.clip(0.6 + np.repeat(effect, 3), 0, 1)
        hits = (rng.random(120) < p).astype(float)
        iv = cluster_bootstrap(hits, np.repeat(np.arange(40), 3), samples=500, seed=rep)
        covered += iv.lo <= 0.6 <= iv.hi
    assert 0.88 <= covered / 200 <= 0.99, covered


def test_clusters_widen_the_interval_when_a_clips_images_agree():
    values = np.repeat([0.0, 1.0] * 10, 5)  # 20 clips, 5 identical images each
    by_clip = cluster_bootstrap(values, np.repeat(np.arange(20), 5))
    by_image = cluster_bootstrap(values, np.arange(100))
    assert by_clip.hi - by_clip.lo > 1.8 * (by_image.hi - by_image.lo)


def test_a_method_against_itself_differs_by_exactly_zero():
    values = np.random.default_rng(0).random(30)
    d = paired_difference(values, values, np.repeat(np.arange(10), 3))
    assert d.value == d.lo == d.hi == 0.0 and not d.excludes_zero()


def test_a_clear_difference_excludes_zero_and_is_deterministic():
    rng = np.random.default_rng(2)
    a = rng.random(60) + 0.3
    b = rng.random(60)
    clusters = np.repeat(np.arange(20), 3)
    d = paired_difference(a, b, clusters, seed=5)
    assert d.excludes_zero() and d.lo > 0
    assert d == paired_difference(a, b, clusters, seed=5)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="one cluster per value"):
        cluster_bootstrap([1.0, 2.0], [0])
    with pytest.raises(ValueError, match="differ in shape"):
        paired_difference([1.0], [1.0, 2.0], [0])


def test_the_bootstrap_standard_error_matches_the_analytic_one():
    # 400 independent 0/1 hits at p = 0.5, one per clip: SE = sqrt(p (1 - p) / n) = 0.025
    hits = np.tile([0.0, 1.0], 200)
    se = resampled_means(hits, np.arange(400), samples=4000, seed=1).std()
    assert se == pytest.approx(0.025, rel=0.08)
    # the same 400 hits as 100 clips x 4 identical seeds: the seeds add nothing, SE = sqrt(.25 / 100) = 0.05
    clustered = np.repeat(np.tile([0.0, 1.0], 50), 4)
    se = resampled_means(clustered, np.repeat(np.arange(100), 4), samples=4000, seed=1).std()
    assert se == pytest.approx(0.05, rel=0.08)


# ---- FID over images ----------------------------------------------------------------------------------------------
def test_the_fid_bootstraps_value_is_torchmetrics_fid():
    """The same number as sonic.metrics.fid.fid_from_features, with fewer images than features (rank-deficient
    covariances) and with more generated images than real ones."""
    import torch

    from sonic.metrics.bootstrap import fid_bootstrap
    from sonic.metrics.fid import fid_from_features

    rng = np.random.default_rng(0)
    for n, m, d in [(40, 60, 8), (20, 30, 32), (60, 25, 6)]:
        generated, real = rng.normal(size=(n, d)) * 1.3 + 0.4, rng.normal(size=(m, d)) + 5.0
        iv = fid_bootstrap(generated, real, samples=20)
        assert iv.value == pytest.approx(fid_from_features(torch.tensor(generated), torch.tensor(real)), rel=1e-6)
        assert iv.lo <= iv.value <= iv.hi


def test_the_fid_interval_covers_the_known_fid():
    """Generated features N(shift, diag(1.5, 1, 1)^2), real N(0, I): FID = |shift|^2 + (1.5 - 1)^2 = 1.25. Over 30
    draws of 100 + 100 images the 95 % interval covers 1.25 in about 95 % of them, and the bootstrap's standard
    error is the scatter of FID between draws."""
    from sonic.metrics.bootstrap import fid_bootstrap

    rng = np.random.default_rng(3)
    scale, shift, known = np.array([1.5, 1.0, 1.0]), np.array([1.0, 0.0, 0.0]), 1.25
    values, errors, covered = [], [], 0
    for rep in range(30):
        iv = fid_bootstrap(rng.normal(size=(100, 3)) * scale + shift, rng.normal(size=(100, 3)), samples=200,
                           seed=rep)
        covered += iv.lo <= known <= iv.hi
        values.append(iv.value)
        errors.append((iv.hi - iv.value) / 1.959964)
    assert covered >= 26, covered
    assert np.mean(errors) == pytest.approx(np.std(values), rel=0.3)


def test_the_fid_interval_resamples_a_clips_images_together():
    """Four identical images per clip: resampled by clip, FID scatters as 25 images would, wider than 100."""
    from sonic.metrics.bootstrap import fid_bootstrap

    rng = np.random.default_rng(4)
    generated, real = np.repeat(rng.normal(size=(25, 3)) + 0.5, 4, axis=0), rng.normal(size=(100, 3))
    by_clip = fid_bootstrap(generated, real, np.repeat(np.arange(25), 4), samples=300)
    by_image = fid_bootstrap(generated, real, samples=300)
    assert by_clip.value == by_image.value
    assert by_clip.hi - by_clip.lo > 1.3 * (by_image.hi - by_image.lo)
    assert by_clip == fid_bootstrap(generated, real, np.repeat(np.arange(25), 4), samples=300)  # deterministic
    with pytest.raises(ValueError, match="one cluster per generated image"):
        fid_bootstrap(generated, real, [0, 1])
