from __future__ import annotations

import math

import numpy as np
import pytest

from llmrank.retrieve.query import combine, recency_weights, useful_length, weighted_query


def test_recency_weights_halve_every_half_life():
    w = recency_weights(5, half_life=2.0)
    np.testing.assert_allclose(w, [0.25, 2 ** -1.5, 0.5, 2 ** -0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(recency_weights(4, math.inf), 1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_invalid_half_life(bad):
    with pytest.raises(ValueError):
        recency_weights(3, bad)


def test_weighted_query_is_normalised_weighted_mean():
    v = np.eye(3, dtype=np.float32)
    q = weighted_query(v, half_life=1.0)  # weights 0.25, 0.5, 1
    expected = np.array([0.25, 0.5, 1.0]) / np.linalg.norm([0.25, 0.5, 1.0])
    np.testing.assert_allclose(q, expected, rtol=1e-6)
    assert q[2] > q[1] > q[0]  # newest item pulls hardest
    np.testing.assert_allclose(weighted_query(v, math.inf), np.full(3, 3 ** -0.5), rtol=1e-6)


def test_useful_length_truncates_negligible_tail():
    n = useful_length(10.0)
    assert n is not None and recency_weights(n + 5, 10.0)[5] < 1e-6 <= recency_weights(n, 10.0)[1]
    assert useful_length(math.inf) is None


def test_combine_blends_equally():
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    np.testing.assert_allclose(combine(a, None, b), [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    with pytest.raises(ValueError):
        combine(None)
