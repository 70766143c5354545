"""Shared pieces of the reranker benchmarks: data, users, and a zero-shot reranker Ranker for
the evaluation harness whose per-permutation scores are cached, so that '1 permutation' and
'3 permutations' are measured on the very same model outputs (permutation 0 is the given
order, exactly what a 1-permutation reranker scores)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.scorer import LabelScorer, RankInput, permutation

log = logging.getLogger(__name__)


class PermutationCache:
    """(stage, user, candidate codes, permutation) -> renormalised log-probs per candidate."""

    def __init__(self, llm: Any, builder: RankPromptBuilder, seed: int = 0) -> None:
        self.scorer = LabelScorer(llm, builder, permutations=1, seed=seed)
        self.seed = seed
        self.rows: dict[tuple[str, int, tuple[int, ...], int], np.ndarray] = {}
        self.seconds: list[float] = []

    def scores(self, split: LeaveOneOut, stage: str, users: np.ndarray, cands: np.ndarray,
               n_perm: int) -> np.ndarray:
        ds = split.dataset
        items = ds.items
        out = np.zeros(cands.shape, dtype=np.float64)
        for p in range(n_perm):
            todo, reqs = [], []
            for row, (u, c) in enumerate(zip(users.tolist(), cands, strict=True)):
                key = (stage, int(u), tuple(int(x) for x in c), p)
                if key in self.rows:
                    continue
                perm = permutation(len(c), p, self.seed, str(u))
                hist = [items[ds.item_ids[h]] for h in split.history(int(u), stage)]
                reqs.append(RankInput(hist, [items[ds.item_ids[int(c[j])]] for j in perm], key=str(u)))
                todo.append((row, key, perm))
            if reqs:
                res = self.scorer.score(reqs)
                for (_, key, perm), r in zip(todo, res, strict=True):
                    per_cand = np.empty(len(perm))
                    per_cand[perm] = r.scores
                    self.rows[key] = per_cand
                    self.seconds.append(r.seconds)
            for row, (u, c) in enumerate(zip(users.tolist(), cands, strict=True)):
                out[row] += self.rows[(stage, int(u), tuple(int(x) for x in c), p)]
        return out / n_perm


class ZeroShotRanker:
    """Eval-harness Ranker: the zero-shot reranker with ``n_perm`` averaged permutations."""

    def __init__(self, cache: PermutationCache, n_perm: int, name: str) -> None:
        self.cache = cache
        self.n_perm = n_perm
        self.name = name
        self.split: LeaveOneOut | None = None

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self.split = split

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None or self.split is None:
            raise ValueError("the reranker scores candidate lists only (after fit)")
        return self.cache.scores(self.split, stage, np.asarray(users), np.asarray(candidates), self.n_perm)
