from __future__ import annotations

import numpy as np

from llmrank.rerank.blend import blend


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
