from __future__ import annotations

import numpy as np
import pytest

from llmrank.explore.plackett_luce import enumerate_marginals, pl_marginals, sample_rankings


@pytest.mark.parametrize(("n", "k", "scale"), [(5, 3, 1.0), (6, 6, 3.0), (7, 4, 10.0), (6, 3, 200.0)])
def test_quadrature_matches_enumeration(n, k, scale):
    logits = np.random.default_rng(n).normal(size=n) * scale
    np.testing.assert_allclose(pl_marginals(logits, k), enumerate_marginals(logits, k), atol=1e-8)


def test_large_list_matches_sampling_and_is_a_distribution():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=60) * 1.5
    exact = pl_marginals(logits, 8)
    np.testing.assert_allclose(exact.sum(1), 1.0, atol=1e-9)
    assert exact.sum(0).max() <= 1.0 + 1e-9
    m = 40_000
    top = np.argsort(-sample_rankings(logits, m, rng), axis=1)[:, :8]
    freq = np.stack([np.bincount(top[:, p], minlength=60) / m for p in range(8)])
    assert np.abs(freq - exact).max() < 0.012  # ~4 standard errors at p = 0.5
