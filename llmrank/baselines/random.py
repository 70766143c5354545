"""Random and oracle rankers: the floor and ceiling that check the harness itself (random
gives NDCG@10 = 0.2272 on the 20-candidate protocol in expectation, oracle gives 1.0)."""

from __future__ import annotations

import numpy as np

from llmrank.data.candidates import user_rng
from llmrank.data.splits import LeaveOneOut
from llmrank.eval.base import check_stage

_SALT = 104729  # user_rng salt, distinct from candidate sampling and tie-breaking


class RandomRanker:
    """Uniform random scores. Each user gets one fixed random score per item, drawn from
    ``user_rng(seed, user)``, so results do not depend on batching or worker order and an
    item scores the same under every protocol."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._n_items = 0

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        check_stage(stage)
        self._n_items = split.dataset.n_items

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        full = np.stack([user_rng(self.seed, int(u), _SALT).random(self._n_items) for u in users]) \
            if len(users) else np.zeros((0, self._n_items))
        if candidates is None:
            return full
        return np.take_along_axis(full, np.asarray(candidates, dtype=np.int64), axis=1)


class OracleRanker:
    """Cheats on purpose: scores the stage's target 1 and everything else 0. Only for
    checking the harness (every metric must be 1.0); never a baseline to report."""

    name = "oracle"

    def __init__(self) -> None:
        self._split: LeaveOneOut | None = None

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        check_stage(stage)
        self._split = split

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        assert self._split is not None, "fit() first"
        targets = np.array([self._split.target(int(u), stage) for u in users], dtype=np.int64)
        if candidates is None:
            out = np.zeros((len(users), self._split.dataset.n_items))
            out[np.arange(len(users)), targets] = 1.0
            return out
        return (np.asarray(candidates) == targets[:, None]).astype(np.float64)
