from __future__ import annotations

import numpy as np
import pytest

from llmrank.errors import ConfigError
from llmrank.explore.calibration import ScoreCalibrator, pav_decreasing


def test_pav_matches_hand_solution():
    out = pav_decreasing(np.array([5.0, 3.0, 4.0, 1.0, 2.0, 0.0]), np.ones(6))
    np.testing.assert_allclose(out, [5.0, 3.5, 3.5, 1.5, 1.5, 0.0])
    weighted = pav_decreasing(np.array([1.0, 2.0]), np.array([3.0, 1.0]))
    np.testing.assert_allclose(weighted, [1.25, 1.25])


def _fit(kind, true_p, steps=3000):
    rng = np.random.default_rng(0)
    cal = ScoreCalibrator(kind, base_rate=0.05, strength=20.0, bins=20)
    for _ in range(steps):
        rank = rng.integers(0, 20, size=5)
        z = 1.5 - rank / 6.0
        cal.observe(rank, z, (rng.random(5) < true_p(rank, z)).astype(float))
    ranks = np.array([0, 1, 5, 15])
    return cal.predict(ranks, 1.5 - ranks / 6.0), true_p(ranks, 1.5 - ranks / 6.0)


def test_rank_calibrator_learns_any_decreasing_curve():
    pred, true = _fit("rank", lambda r, z: 0.3 / (1.0 + r))
    assert np.all(np.diff(pred) <= 1e-12)
    assert np.abs(pred - true).max() < 0.06


def test_platt_calibrator_learns_a_logistic_curve():
    pred, true = _fit("platt", lambda r, z: 1.0 / (1.0 + np.exp(-(1.2 * z - 2.0))))
    assert np.abs(pred - true).max() < 0.03


def test_unknown_calibration_kind():
    with pytest.raises(ConfigError):
        ScoreCalibrator("isotonic")  # type: ignore[arg-type]
