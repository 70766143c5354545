"""Validation ranks of the sequential model (early stopping) and of the fusion fit mask the
user's history as the eval harness does: every seen item is out, except the target itself
when the user consumes it again (``llmrank.eval.protocols._masked_full_scores``). Masking a
re-consumed target made it a miss, so on data with repeat consumption the early-stopping
NDCG and the fusion grid measured something else than the harness reports."""

from __future__ import annotations

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut
from llmrank.eval import EvalProtocol, evaluate_ranker
from llmrank.records import Item, User
from llmrank.retrieve.fusion_fit import _Validation
from llmrank.retrieve.sequential.evaluate import masked_ranks, split_ranks


def _repeat_split() -> LeaveOneOut:
    """User a re-watches item p as the validation and test target; user b does not."""
    seqs = {"a": "pqrpp", "b": "qrsts"}
    events = [(u, i, t, None) for u, seq in seqs.items() for t, i in enumerate(seq)]
    ds = Dataset.from_records("repeat", [Item(i, title=i) for i in "pqrst"],
                              [User(u) for u in seqs], events)
    return LeaveOneOut.from_dataset(ds)


def test_masked_ranks_keep_a_reconsumed_target():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    fn = lambda hists: np.repeat(scores, len(hists), axis=0)  # noqa: E731
    # history 0, 1, 3; target 3 was seen before: it competes with the unseen items 2 and 4
    assert masked_ranks(fn, [np.array([0, 1, 3])], np.array([3])).tolist() == [2.0]
    # a target never seen: the history is out as before
    assert masked_ranks(fn, [np.array([0, 1])], np.array([4])).tolist() == [3.0]


class _Fixed:
    """A ranker with one fixed score row for every user (the harness's view of a model)."""

    name = "fixed"

    def __init__(self, row: np.ndarray) -> None:
        self.row = row

    def fit(self, split, stage):
        pass

    def score(self, users, candidates, stage):
        return np.repeat(self.row[None], len(users), axis=0)


def test_sequential_validation_ranks_agree_with_the_harness():
    split = _repeat_split()
    row = np.arange(split.dataset.n_items, dtype=np.float64)[::-1].copy()
    fn = lambda hists: np.repeat(row[None], len(hists), axis=0)  # noqa: E731
    ours = split_ranks(fn, split, "valid")
    fusion = _Validation.of(split).ranks(np.repeat(row[None], len(ours), axis=0))
    result = evaluate_ranker(_Fixed(row), split, EvalProtocol(name="full", stage="valid"))
    assert result.outcome.users.tolist() == split.eval_users().tolist()
    harness = result.outcome.ranks
    user_a = int(np.flatnonzero(split.eval_users() == split.dataset.user_code("a"))[0])
    assert np.isfinite(ours[user_a]) and np.isfinite(fusion[user_a])
    assert ours.tolist() == fusion.tolist() == np.asarray(harness).tolist()
