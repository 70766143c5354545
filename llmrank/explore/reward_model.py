"""A simple reward model for the doubly robust estimator, with cross-fitting.

Logistic regression of a slot's reward on features of (context, candidate, position) that every
log has: the candidate's standardised ranker score z (and z^2), its rank in the candidate list
(1 / (1 + rank)) and the position (one-hot). It need not be right: DR stays unbiased with any
model fitted on *other* rounds (``cross_fit``); a better model only lowers the variance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmrank.explore.ope import LoggedRound, RewardFn


def _features(rnd: LoggedRound, k: int) -> np.ndarray:
    """(k, n, f) features of every candidate at every position."""
    s = rnd.scores
    sd = s.std()
    z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    rank = np.empty(len(s))
    rank[np.argsort(-s, kind="stable")] = np.arange(len(s))
    base = np.stack([np.ones_like(z), z, z * z, 1.0 / (1.0 + rank)], 1)  # (n, 4)
    pos = np.eye(k)  # (k, k)
    n = len(s)
    return np.concatenate([np.broadcast_to(base, (k, n, 4)),
                           np.broadcast_to(pos[:, None, :], (k, n, k))], axis=2)


class ScorePositionModel:
    """sigmoid(theta . [1, z, z^2, 1/(1+rank), onehot(position)]), L2-regularised IRLS."""

    def __init__(self, k: int, l2: float = 1.0, iterations: int = 25) -> None:
        self.k = k
        self.l2 = l2
        self.iterations = iterations
        self.theta = np.zeros(4 + k)
        self.fitted = False

    def fit(self, rounds: Sequence[LoggedRound]) -> ScorePositionModel:
        """Fit on the shown slots of ``rounds``. With none (a cross-fitting fold of a tiny log
        whose other folds are empty) the model stays unfitted and predicts no reward."""
        xs, ys = [], []
        for rnd in rounds:
            f = _features(rnd, self.k)
            for p, j in enumerate(rnd.shown[: self.k]):
                xs.append(f[p, j])
                ys.append(min(max(float(rnd.rewards[p]), 0.0), 1.0))
        if not xs:
            return self
        x, y = np.asarray(xs), np.asarray(ys)
        theta = np.zeros(x.shape[1])
        reg = self.l2 * np.eye(x.shape[1])
        reg[0, 0] = 0.0
        for _ in range(self.iterations):
            prob = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -30, 30)))
            g = x.T @ (prob - y) + reg @ theta
            h = (x * (prob * (1 - prob))[:, None]).T @ x + reg + 1e-8 * np.eye(len(theta))
            step = np.linalg.solve(h, g)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        self.theta = theta
        self.fitted = True
        return self

    def predict(self, rnd: LoggedRound, k: int) -> np.ndarray:
        """(k, n) predicted reward of every candidate at every position; 0 when unfitted, so
        DR falls back to IPS for the rounds it corrects (still unbiased)."""
        if not self.fitted:
            return np.zeros((k, len(rnd.scores)))
        f = _features(rnd, self.k)[:k]
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(f @ self.theta, -30, 30))))


def cross_fit(rounds: Sequence[LoggedRound], k: int, *, folds: int = 2, seed: int = 0,
              l2: float = 1.0) -> RewardFn:
    """A reward function that predicts each round with a model fitted on the other folds
    (on a log too small for every fold to have others, those rounds get no prediction: 0)."""
    fold_of = np.random.default_rng(seed).integers(0, folds, size=len(rounds))
    models = [ScorePositionModel(k, l2).fit([r for r, f in zip(rounds, fold_of, strict=True) if f != i])
              for i in range(folds)]
    where = {id(r): int(f) for r, f in zip(rounds, fold_of, strict=True)}

    def predict(rnd: LoggedRound, kk: int) -> np.ndarray:
        return models[where.get(id(rnd), 0)].predict(rnd, kk)

    return predict
