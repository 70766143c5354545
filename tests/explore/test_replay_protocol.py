"""Replay protocol checks on tiny hand-built logs whose answers can be computed by hand."""

from __future__ import annotations

import pytest

from llmrank.data.dataset import Dataset
from llmrank.errors import ConfigError
from llmrank.explore.priors import PopularityPrior
from llmrank.explore.replay import PolicySpec, ReplayConfig, replay
from llmrank.records import Item

GREEDY = [PolicySpec("greedy", "greedy")]


def _items(n: int) -> list[Item]:
    return [Item(f"i{j}", title=f"Item {j}") for j in range(n)]


def _ring(n_users: int = 6, n_items: int = 8, length: int = 6) -> Dataset:
    events = [(f"u{u}", f"i{(u + s) % n_items}", 10 * s + u, 4.0)
              for u in range(n_users) for s in range(length)]
    return Dataset.from_records("ring", _items(n_items), [], events)


@pytest.mark.parametrize("cfg, match", [
    (ReplayConfig(k=5, n_candidates=3, embedding_dim=0), "k"),  # slates of 3 reported as k=5
    (ReplayConfig(k=0, n_candidates=3, embedding_dim=0), "k"),
    (ReplayConfig(k=2, n_candidates=3, lookahead=0, embedding_dim=0), "lookahead"),
    (ReplayConfig(k=2, n_candidates=3, warmup=1.0, embedding_dim=0), "warmup"),  # nothing to serve
    (ReplayConfig(k=2, n_candidates=3, max_steps=0, embedding_dim=0), "max_steps"),
])
def test_a_replay_that_cannot_measure_anything_is_a_config_error(cfg, match):
    """These ran and reported a silent zero, a NaN hit rate, or slates smaller than k."""
    with pytest.raises(ConfigError, match=match):
        replay(_ring(), GREEDY, PopularityPrior(), cfg)


def test_an_empty_log_is_a_config_error_and_a_one_event_log_replays():
    """An empty log was a numpy ValueError ('need at least one array to concatenate'); a log
    whose warm-up is empty crashed in the SVD of the (empty) warm-up matrix."""
    with pytest.raises(ConfigError, match="request"):
        replay(Dataset.from_records("empty", _items(3), [], []), GREEDY, PopularityPrior(),
               ReplayConfig(k=1, n_candidates=2, embedding_dim=4))
    one = Dataset.from_records("one", _items(3), [], [("u0", "i0", 1, 4.0)])
    res = replay(one, GREEDY, PopularityPrior(), ReplayConfig(k=1, n_candidates=2, embedding_dim=4))
    assert res.steps == 1 and res.traces["greedy"].clicks.tolist() in ([0], [1])


def test_a_ranker_prior_trains_on_the_warm_up_only():
    """RankerPrior with the eval harness's RetrieverRanker (``ranker:retriever`` in a
    simulation config): the retriever was built on ``visible_dataset(split)``, which for the
    warm-up split (no evaluation targets) was the whole log, the replay's future included."""
    from llmrank.baselines.retriever import RetrieverRanker
    from llmrank.explore.priors import RankerPrior

    ds = _ring()
    built: list[Dataset] = []

    def factory(visible: Dataset) -> object:
        built.append(visible)
        return object()

    warm = [h[:2] for h in ds.histories()]
    RankerPrior(RetrieverRanker(factory=factory)).fit(ds, warm)
    (seen,) = built
    assert len(seen.interactions) == sum(len(h) for h in warm)
    assert [h.tolist() for h in seen.histories()] == [h.tolist() for h in warm]
    assert seen.item_ids == ds.item_ids and seen.user_ids == ds.user_ids  # same codes
