"""Baselines learn only from what is visible at the stage: changing the held-out events
(the targets) must not change a single score."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.baselines import (
    ALSRanker,
    BPRRanker,
    ItemKNNRanker,
    MostPopularRanker,
    RandomRanker,
    RetrieverRanker,
)
from llmrank.baselines.retriever import visible_dataset
from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut


def _with_other_targets(ds: Dataset, split: LeaveOneOut, n_last: int) -> Dataset:
    """Same dataset, but each evaluated user's last ``n_last`` events point at other items."""
    inter = ds.interactions
    order = np.lexsort((inter.order, inter.timestamp, inter.user))
    bounds = np.searchsorted(inter.user[order], np.arange(ds.n_users + 1))
    items = inter.item.copy()
    hists = ds.histories()
    for u in split.eval_users():
        taken = set(hists[u].tolist())
        free = [i for i in range(ds.n_items) if i not in taken]
        for j, pos in enumerate(order[bounds[u + 1] - n_last: bounds[u + 1]]):
            items[pos] = free[(u * 7 + j) % len(free)]
    new = type(inter)(inter.user, items, inter.timestamp, inter.rating, inter.order)
    return Dataset(ds.name, ds.items, ds.users, new, list(ds.item_ids), list(ds.user_ids))


FACTORIES = [
    lambda: RandomRanker(seed=1),
    MostPopularRanker,
    lambda: ItemKNNRanker(neighbors=30, shrinkage=5.0),
    lambda: ALSRanker(factors=8, iterations=3),
    lambda: BPRRanker(factors=8, iterations=5),
]


@pytest.mark.parametrize("stage,n_last", [("test", 1), ("valid", 2)])
@pytest.mark.parametrize("factory", FACTORIES)
def test_scores_do_not_depend_on_held_out_targets(synth, synth_split, factory, stage, n_last):
    other = LeaveOneOut.from_dataset(_with_other_targets(synth, synth_split, n_last))
    users = synth_split.eval_users()
    assert (other.test_target[users] != synth_split.test_target[users]).all()
    a, b = factory(), factory()
    a.fit(synth_split, stage)
    b.fit(other, stage)
    assert np.array_equal(a.score(users, None, stage), b.score(users, None, stage))


def test_test_stage_sees_the_validation_item(synth_split):
    """The LlamaRec protocol: the test-time history includes the validation item."""
    pop_valid, pop_test = MostPopularRanker(), MostPopularRanker()
    pop_valid.fit(synth_split, "valid")
    pop_test.fit(synth_split, "test")
    users = synth_split.eval_users()
    added = np.bincount(synth_split.valid_target[users], minlength=synth_split.dataset.n_items)
    assert np.array_equal(pop_test.popularity - pop_valid.popularity, added)


def test_visible_dataset_drops_exactly_the_targets(synth_split):
    for stage, dropped in (("test", 1), ("valid", 2)):
        vis = visible_dataset(synth_split, stage)
        n_eval = len(synth_split.eval_users())
        assert len(vis.interactions) == len(synth_split.dataset.interactions) - dropped * n_eval
        hists = vis.histories()
        for u in synth_split.eval_users()[:20]:
            assert np.array_equal(hists[u], synth_split.history(int(u), stage))


def test_retriever_adapter_builds_on_visible_data(synth_split):
    seen: list[Dataset] = []

    class Fake:
        name = "fake"

        def retrieve(self, *, history=None, text=None, k=20, filters=None):
            raise AssertionError("not called")

    def factory(ds):
        seen.append(ds)
        return Fake()

    RetrieverRanker(factory=factory).fit(synth_split, "test")
    assert len(seen[0].interactions) < len(synth_split.dataset.interactions)
