"""Ranker interface used by the evaluation harness: anything that scores item codes for a
user at a split stage (retriever alone, retriever + LLM reranker, baselines, policies)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from llmrank.data.splits import LeaveOneOut


@runtime_checkable
class Ranker(Protocol):
    name: str

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        """Train on what is visible when predicting ``stage`` ('valid' or 'test')."""
        ...

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        """Scores, higher is better. ``candidates`` is None for full ranking (returns
        (len(users), n_items)) or a (len(users), n_cand) array of item codes (returns the same
        shape). The harness masks seen items itself."""
        ...
