"""What the interaction-based baselines share: the visible user-item matrix of a stage and
turning full score rows into candidate scores."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.base import check_stage

TieBreak = Literal["none", "popularity"]


class MatrixRanker:
    """Base for rankers that learn from ``split.train_matrix(stage)`` (binary user x item):
    for 'valid' the training histories, for 'test' also the validation items, never the
    target being predicted. Subclasses implement ``_fit(matrix)`` and ``_full(users)``.

    ``tie_break='popularity'`` orders items with equal scores by their visible interaction
    count (``llmrank.eval.base.BreaksTies``); items equal in both are left to the protocol's
    tie policy. 'none' leaves every tie to the protocol."""

    name = "matrix"

    def __init__(self, tie_break: TieBreak = "none") -> None:
        if tie_break not in ("none", "popularity"):
            raise ValueError(f"tie_break must be 'none' or 'popularity', got {tie_break!r}")
        self.tie_break = tie_break
        self._split: LeaveOneOut | None = None
        self._stage: str | None = None
        self.matrix: Any = None  # scipy.sparse.csr_matrix
        self.counts = np.zeros(0)  # visible interactions per item

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self._split, self._stage = split, check_stage(stage)
        self.matrix = split.train_matrix(stage)
        self.counts = np.asarray(self.matrix.sum(axis=0), dtype=np.float64).reshape(-1)
        self._fit(self.matrix)

    def _check(self, stage: str) -> None:
        if self._stage is None:
            raise RuntimeError(f"{self.name}: call fit() before score()")
        if stage != self._stage:
            raise ValueError(f"{self.name} was fitted for stage {self._stage!r}, asked for {stage!r}")

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        self._check(stage)
        full = self._full(np.asarray(users, dtype=np.int64))
        if candidates is None:
            return full
        return np.take_along_axis(full, np.asarray(candidates, dtype=np.int64), axis=1)

    def tie_scores(self, users: np.ndarray, candidates: np.ndarray | None,
                   stage: str) -> np.ndarray | None:
        """Visible popularity of each scored item (``tie_break='popularity'``), else None."""
        self._check(stage)
        if self.tie_break == "none":
            return None
        if candidates is None:
            return np.broadcast_to(self.counts, (len(users), len(self.counts)))
        return self.counts[np.asarray(candidates, dtype=np.int64)]

    def _fit(self, matrix: Any) -> None:
        raise NotImplementedError

    def _full(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError
