"""Online calibration of ranker scores into click probabilities.

A Thompson prior needs a click probability, but rankers give log-probs (LLM), cosines
(retrievers) or kNN sums on their own scales. Two calibrators, both learnt from the feedback the
policy sees and both started from a guess worth ``strength`` pseudo-impressions per bin:

* ``rank``: click rate per rank of the item in the candidate list (bins), made non-increasing
  by isotonic regression (pool-adjacent-violators). Scale-free: works for any ranker.
* ``platt``: logistic regression of click on the standardised score z (Platt scaling), fitted
  by a few Newton steps on binned counts; uses the score's magnitude, not only its order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def pav_decreasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-increasing) fit by pool-adjacent-violators."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            wt = w1 + w2
            blocks.append([(m1 * w1 + m2 * w2) / wt, wt, n1 + n2])
    return np.repeat([b[0] for b in blocks], [int(b[2]) for b in blocks])


class ScoreCalibrator:
    """Maps (rank, z) of candidates to calibrated click probabilities; learns online."""

    def __init__(self, kind: Literal["rank", "platt"] = "rank", *, base_rate: float = 0.02,
                 strength: float = 50.0, bins: int = 100, half_rank: float = 10.0) -> None:
        if kind not in ("rank", "platt"):
            from llmrank.errors import ConfigError

            raise ConfigError(f"calibration must be rank or platt, got {kind!r}")
        self.kind = kind
        self.base_rate = base_rate
        self.strength = strength
        self.bins = bins
        r = np.arange(bins)
        self.prior_curve = base_rate * half_rank / (half_rank + r)  # a decreasing guess
        self.clicks = np.zeros(bins)
        self.shows = np.zeros(bins)
        self._curve: np.ndarray | None = None
        # platt: z in [-4, 4] binned
        self.z_edges = np.linspace(-4.0, 4.0, bins + 1)
        self.z_mid = 0.5 * (self.z_edges[1:] + self.z_edges[:-1])
        self.z_clicks = np.zeros(bins)
        self.z_shows = np.zeros(bins)
        self._ab: tuple[float, float] | None = None

    def _rank_bin(self, rank: np.ndarray) -> np.ndarray:
        return np.minimum(np.asarray(rank, dtype=np.int64), self.bins - 1)

    def _z_bin(self, z: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.z_edges, z) - 1, 0, self.bins - 1)

    def predict(self, rank: np.ndarray, z: np.ndarray) -> np.ndarray:
        if self.kind == "rank":
            if self._curve is None:
                w = self.shows + self.strength
                raw = (self.clicks + self.strength * self.prior_curve) / w
                self._curve = pav_decreasing(raw, w)
            return np.asarray(self._curve[self._rank_bin(rank)])
        a, b = self._platt()
        return np.asarray(1.0 / (1.0 + np.exp(-(a * np.asarray(z) + b))))

    def observe(self, rank: np.ndarray, z: np.ndarray, reward: np.ndarray) -> None:
        reward = np.clip(np.asarray(reward, dtype=np.float64), 0.0, 1.0)
        rb = self._rank_bin(rank)
        np.add.at(self.clicks, rb, reward)
        np.add.at(self.shows, rb, 1.0)
        zb = self._z_bin(np.asarray(z))
        np.add.at(self.z_clicks, zb, reward)
        np.add.at(self.z_shows, zb, 1.0)
        self._curve = None
        self._ab = None

    def _platt(self) -> tuple[float, float]:
        if self._ab is not None:
            return self._ab
        # pseudo-data from the starting guess sigmoid(z + logit(base_rate)) keeps the fit sane
        b0 = float(np.log(self.base_rate / (1.0 - self.base_rate)))
        guess = 1.0 / (1.0 + np.exp(-(self.z_mid + b0)))
        n = self.z_shows + self.strength / self.bins
        y = (self.z_clicks + (self.strength / self.bins) * guess) / n
        a, b = 1.0, b0
        X = np.stack([self.z_mid, np.ones_like(self.z_mid)], 1)
        for _ in range(8):
            p = 1.0 / (1.0 + np.exp(-(a * self.z_mid + b)))
            g = X.T @ (n * (p - y))
            H = (X * (n * p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
            step = np.linalg.solve(H, g)
            a, b = a - float(step[0]), b - float(step[1])
        self._ab = (a, b)
        return self._ab
