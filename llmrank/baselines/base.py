"""What the interaction-based baselines share: the visible user-item matrix of a stage and
turning full score rows into candidate scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.base import check_stage


class MatrixRanker:
    """Base for rankers that learn from ``split.train_matrix(stage)`` (binary user x item):
    for 'valid' the training histories, for 'test' also the validation items, never the
    target being predicted. Subclasses implement ``_fit(matrix)`` and ``_full(users)``."""

    name = "matrix"

    def __init__(self) -> None:
        self._split: LeaveOneOut | None = None
        self._stage: str | None = None
        self.matrix: Any = None  # scipy.sparse.csr_matrix

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self._split, self._stage = split, check_stage(stage)
        self.matrix = split.train_matrix(stage)
        self._fit(self.matrix)

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if self._stage is None:
            raise RuntimeError(f"{self.name}: call fit() before score()")
        if stage != self._stage:
            raise ValueError(f"{self.name} was fitted for stage {self._stage!r}, asked for {stage!r}")
        full = self._full(np.asarray(users, dtype=np.int64))
        if candidates is None:
            return full
        return np.take_along_axis(full, np.asarray(candidates, dtype=np.int64), axis=1)

    def _fit(self, matrix: Any) -> None:
        raise NotImplementedError

    def _full(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError
