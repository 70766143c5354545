from __future__ import annotations

import numpy as np

from llmrank.rerank.blend import blend, zscore


def test_missing_retrieval_scores_rank_last_not_at_zero():
    """NaN/-inf used to become 0.0, above every negative score (distances, log-probs)."""
    flat = np.array([-1.0, -1.0, -1.0])
    for retr in ([-5.0, -3.0, -np.inf], [-5.0, -3.0, np.nan]):
        out = blend(flat, np.array(retr), 0.5)
        assert int(np.argmin(out)) == 2 and int(np.argmax(out)) == 1
    assert np.all(np.isfinite(blend(flat, np.array([np.nan, -np.inf, np.nan]), 0.5)))


def test_finite_scores_blend_as_before():
    llm, retr = np.array([0.0, -1.0, -2.0]), np.array([3.0, 1.0, 2.0])
    z = lambda x: (x - x.mean()) / x.std()  # noqa: E731
    np.testing.assert_allclose(blend(llm, retr, 0.25), 0.75 * z(llm) + 0.25 * z(retr))
    np.testing.assert_array_equal(blend(llm, None, 0.5), llm)
    np.testing.assert_array_equal(blend(llm, retr, 0.0), llm)


def test_scores_near_the_float_limit_blend_without_overflow():
    """The mean and deviation of scores near 1e308 overflow: each side is scaled by its
    largest magnitude before the z-score (z does not change), also where a retrieval score is
    missing and fill_missing steps one score range past the finite ones."""
    huge = np.array([1e308, -1e308, 0.0])
    out = blend(huge, np.array([1e308, -np.inf, -1e308]), 0.5)
    assert np.all(np.isfinite(out)) and int(np.argmax(out)) == 0 and int(np.argmin(out)) == 1
    np.testing.assert_allclose(zscore(huge), zscore(np.array([1.0, -1.0, 0.0])))
    assert not zscore(np.array([2.0, np.inf])).any()  # a non-finite score: no information
