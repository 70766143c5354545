"""From per-user outcomes to reported numbers (llmrank.eval.results)."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.eval.protocols import ShardResult
from llmrank.eval.results import BeyondInputs, summarize


def _outcome(lists: np.ndarray, n_candidates: int) -> ShardResult:
    n = len(lists)
    return ShardResult(
        users=np.arange(n), ranks=np.ones(n), lists=lists,
        list_scores=np.zeros(lists.shape), target_pos=np.full(n, -1),
        retrieved=np.ones(n, bool), invalid=np.zeros(n, bool),
        n_missing=np.zeros(n, np.int64), n_candidates=np.full(n, n_candidates))


def test_beyond_metrics_refuse_lists_cut_shorter_than_k():
    """Lists kept to 2 items of 8 candidates cannot give coverage@4 / novelty@4: the old
    code silently reported the top-2 numbers under the @4 label."""
    pop = np.array([5.0, 4, 3, 2, 1, 0, 0, 0])
    lists = np.array([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="beyond"):
        summarize("r", "full", "test", _outcome(lists, 8), [1], 0, BeyondInputs(8, pop, k=4))
    # every candidate listed (a 2-candidate protocol): top-4 of 2 items is the 2 items
    res = summarize("r", "candidates", "test", _outcome(lists, 2), [1], 0,
                    BeyondInputs(8, pop, k=4))
    assert res.coverage == pytest.approx(4 / 8)
    # lists long enough: only the top k count (hand-computed: items 0, 1 / 4, 5 of 8)
    long = np.array([[0, 1, 2], [4, 5, 6]])
    res = summarize("r", "full", "test", _outcome(long, 8), [1], 0, BeyondInputs(8, pop, k=2))
    assert res.coverage == pytest.approx(4 / 8)
    p = (pop + 1) / (pop.sum() + 8)
    expect = np.mean([np.mean(-np.log2(p[[0, 1]])), np.mean(-np.log2(p[[4, 5]]))])
    assert res.beyond["novelty@2"].mean == pytest.approx(expect)
