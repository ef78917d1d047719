"""The comparison across training seeds (sonic.metrics.replicates) on constructed differences."""

import numpy as np
import pytest

from sonic.metrics.replicates import clip_variance, compare_across_seeds, interval_variance


def test_a_difference_whose_sign_flips_between_seeds_is_not_marked():
    """Two seeds far above zero and one below: the mean is positive, the seeds disagree, no mark, even with a
    (hypothetically) tiny interval."""
    c = compare_across_seeds([0.30, 0.28, -0.02], clip_var=0.0)
    assert c.mean > 0 and c.signs == "++-" and not c.same_sign and c.mark == ""


def test_a_consistent_difference_is_marked():
    up = compare_across_seeds([0.20, 0.25, 0.22], clip_var=0.02**2)
    assert up.signs == "+++" and up.lo > 0 and up.mark == "▲"
    down = compare_across_seeds([-0.20, -0.25, -0.22], clip_var=0.02**2)
    assert down.hi < 0 and down.mark == "▼"


def test_one_seed_gives_no_mark():
    c = compare_across_seeds([0.5], clip_var=0.0)
    assert c.mean == 0.5 and np.isnan(c.lo) and np.isnan(c.hi) and c.mark == ""


def test_agreeing_seeds_are_not_enough_where_the_clips_error_is_larger():
    """Every seed 0.02 above, but the clips' bootstrap standard error is 0.05: the interval contains zero."""
    c = compare_across_seeds([0.021, 0.020, 0.019], clip_var=0.05**2)
    assert c.same_sign and c.lo < 0 < c.hi and c.mark == ""
    assert c.dof > 1e4  # the seeds barely scatter: the clips' (normal) error dominates


def test_a_wide_between_seed_spread_gives_the_paired_t_interval():
    """Without the clips' error the interval is the paired t interval over seeds, n - 1 degrees of freedom."""
    from scipy.stats import t

    d = np.array([0.10, 0.30, 0.05])
    c = compare_across_seeds(d, clip_var=0.0)
    half = t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert c.dof == pytest.approx(2) and (c.lo, c.hi) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c.same_sign and c.lo < 0 and c.mark == ""  # 3 agreeing seeds, too scattered to exclude zero


def test_an_exact_tie_in_one_seed_is_not_agreement():
    c = compare_across_seeds([0.2, 0.0, 0.2], clip_var=0.0)
    assert c.signs == "+0+" and c.mark == ""


def test_the_clip_variance_is_that_of_the_seed_averaged_differences():
    """Per-image differences of three seeds on 50 clips x 2 images: v is the bootstrap variance of the mean of
    their seed average, close to its analytic clip-level value; seeds that cancel leave nothing to resample."""
    rng = np.random.default_rng(0)
    clip_effect = np.repeat(rng.normal(0, 1, 50), 2)
    per_seed = [clip_effect + rng.normal(0, 0.1, 100) for _ in range(3)]
    clusters = np.repeat(np.arange(50), 2)
    clip_means = np.mean(per_seed, axis=0).reshape(50, 2).mean(axis=1)
    analytic = clip_means.var(ddof=0) / 50
    assert clip_variance(per_seed, clusters, samples=4000) == pytest.approx(analytic, rel=0.1)
    assert clip_variance([clip_effect, -clip_effect], clusters) == pytest.approx(0.0, abs=1e-20)


def test_the_variance_of_a_normal_interval():
    assert interval_variance(10.0, 10.0 + 1.959964 * 2.0, 0.95) == pytest.approx(4.0, rel=1e-6)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="one finite difference per seed"):
        compare_across_seeds([], 0.0)
    with pytest.raises(ValueError, match="one finite difference per seed"):
        compare_across_seeds([0.1, float("nan")], 0.0)
    with pytest.raises(ValueError, match="level"):
        compare_across_seeds([0.1, 0.2], 0.0, level=1.5)
