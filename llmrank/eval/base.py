"""Ranker interface used by the evaluation harness: anything that scores item codes for a
user at a split stage (retriever alone, retriever + LLM reranker, baselines, policies).

A Ranker is fitted once per stage and then asked for scores shard by shard, possibly in
forked worker processes and possibly again after a resume. So that interrupted, parallel
and uninterrupted runs give identical numbers, ``fit`` must be deterministic under the
ranker's seed and ``score`` for a user must not depend on which other users share the
batch (draw randomness from ``llmrank.data.candidates.user_rng(seed, user, salt)`` with a
salt of the ranker's own: salt 0 is the stream that samples and shuffles the 20 candidates,
and the protocols' random tie-break uses another).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from llmrank.data.splits import LeaveOneOut

STAGES = ("valid", "test")


@runtime_checkable
class Ranker(Protocol):
    name: str

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        """Train on what is visible when predicting ``stage`` ('valid' or 'test'):
        ``split.history(u, stage)`` / ``split.train_matrix(stage)``, never the targets."""
        ...

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        """Scores, higher is better. ``candidates`` is None for full ranking (returns
        (len(users), n_items)) or a (len(users), n_cand) array of item codes (returns the same
        shape). The harness masks seen items itself. NaN marks a candidate the ranker could
        not score (counted as a missing output and ranked last)."""
        ...


@dataclass
class OutputStatus:
    """Per-user health of a ranker's raw output, for rankers that parse generated text.

    ``invalid[i]`` is True when the output for ``users[i]`` could not be used at all (parse
    failure, refusal, an item that is not a candidate) and the ranker fell back to some
    default order; ``n_missing[i]`` counts candidates the output did not rank."""

    invalid: np.ndarray  # (n_users,) bool
    n_missing: np.ndarray  # (n_users,) int

    @classmethod
    def ok(cls, n: int) -> OutputStatus:
        return cls(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))


@runtime_checkable
class ReportsOutputStatus(Protocol):
    """Optional: a ranker (typically an LLM reranker) that also reports output validity.
    The harness calls ``score_with_status`` instead of ``score`` when it exists and reports
    the invalid-output rate and missing-candidate rate next to the accuracy metrics."""

    def score_with_status(
        self, users: np.ndarray, candidates: np.ndarray | None, stage: str,
    ) -> tuple[np.ndarray, OutputStatus]:
        ...


@runtime_checkable
class BreaksTies(Protocol):
    """Optional: a ranker whose scores tie often (item-kNN gives 0 to every item with no
    neighbour in the history) orders its own ties. The harness sorts by (score, tie score)
    and only what is equal in both falls to ``protocol.ties`` (pessimistic by default: the
    target after the items tied with it). Without this, a scorer that ties the target with
    many candidates is ranked as if it had put the target last among them."""

    def tie_scores(self, users: np.ndarray, candidates: np.ndarray | None,
                   stage: str) -> np.ndarray | None:
        """Same shape as ``score``'s result (higher = earlier among equal scores), or None
        for no tie-break."""
        ...


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return stage
