"""Bootstrap CI and paired-test sanity."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.eval.stats import bootstrap_ci, paired_test


def test_bootstrap_ci_covers_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.random(100), seed=1)
    large = bootstrap_ci(rng.random(10_000), seed=1)
    assert small.low < small.mean < small.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    # analytic standard error of a U(0,1) mean with n=10000 is 0.00289 -> half-width ~0.0057
    assert (large.high - large.low) / 2 == pytest.approx(1.96 * (1 / 12) ** 0.5 / 100, rel=0.15)


def test_bootstrap_ci_is_seeded():
    v = np.random.default_rng(0).random(200)
    assert bootstrap_ci(v, seed=5) == bootstrap_ci(v, seed=5)
    assert bootstrap_ci(np.ones(10)).low == 1.0


def test_paired_test_detects_shift_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    better = base + 0.05 + rng.normal(0, 0.02, 300)
    for method in ("t", "permutation"):
        assert paired_test(better, base, method=method).p_value < 1e-3
        same = paired_test(base + rng.normal(0, 0.02, 300), base, method=method)
        assert same.p_value > 0.01
    res = paired_test(better, base)
    assert res.diff_ci.low > 0 and res.diff == pytest.approx(res.mean_a - res.mean_b)


def test_paired_t_matches_scipy_and_identical_inputs():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    assert paired_test(a, b, method="t").p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_test(a, a).p_value == 1.0
    with pytest.raises(ValueError):
        paired_test(a, b[:10])


@pytest.mark.parametrize("method", ["permutation", "t"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_paired_test_refuses_undefined_per_user_values(method, bad):
    """A NaN (or inf) per-user value is not a difference of 0: the sign-flip statistic became
    NaN, no flip was 'as extreme', and the test reported p = 1/(n_resamples + 1), the
    smallest p it can give, for data that say nothing. Undefined users must be dropped from
    both arrays by the caller, with the same mask."""
    rng = np.random.default_rng(0)
    a, b = rng.random(40), rng.random(40)
    a[7] = bad
    with pytest.raises(ValueError, match="1 user"):
        paired_test(a, b, method=method)
    with pytest.raises(ValueError, match="1 user"):
        paired_test(b, a, method=method)
    ok = np.arange(40) != 7
    assert paired_test(a[ok], b[ok], method=method).p_value > 0.01
