"""Replay protocol checks on tiny hand-built logs whose answers can be computed by hand."""

from __future__ import annotations

import numpy as np
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


class _Spy:
    """Shows the top k and records the order of its select and update calls."""

    name = "spy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[float] | None]] = []

    def select(self, ranked, k, context=None, *, propensities=True):
        from llmrank.explore.base import Slate

        items = [i for i, _ in ranked[:k]]
        self.calls.append(("select", context.request_id, None))
        return Slate(items, [s for _, s in ranked[:k]], [1.0] * len(items) if propensities else None,
                     "spy", [i for i, _ in ranked], [s for _, s in ranked])

    def update(self, context, slate, rewards):
        self.calls.append(("update", context.request_id, list(rewards)))


def test_a_policy_learns_a_reward_only_once_its_lookahead_window_has_happened():
    """With lookahead 2 the reward of a request counts the user's next two items; the second
    happens later, so the policy may learn that reward only after the replay has walked past
    it. The update came right after the select: u1's request at t=20 was served by a policy
    that already knew u0 would consume i2 at t=40."""
    events = [("u0", "i0", 0, 4.0), ("u1", "i3", 1, 4.0),  # warm-up
              ("u0", "i1", 10, 4.0), ("u1", "i4", 20, 4.0), ("u1", "i5", 30, 4.0),
              ("u0", "i2", 40, 4.0)]
    ds = Dataset.from_records("window", _items(6), [], events)
    spy = _Spy()
    res = replay(ds, [PolicySpec("spy", "spy")], PopularityPrior(),
                 ReplayConfig(k=5, n_candidates=5, warmup=1 / 3, lookahead=2, embedding_dim=0),
                 make=lambda spec, feats: spy)
    assert res.steps == 4
    # requests: replay-0 (u0, t=10, window i1 i2 until t=40), replay-1 (u1, t=20, i4 i5 until
    # t=30), replay-2 (u1, t=30, i5), replay-3 (u0, t=40, i2)
    order = [(kind, rid) for kind, rid, _ in spy.calls]
    assert order == [("select", "replay-0"), ("select", "replay-1"), ("select", "replay-2"),
                     ("update", "replay-1"), ("update", "replay-2"), ("select", "replay-3"),
                     ("update", "replay-0"), ("update", "replay-3")]
    # each update is fed once, with the rewards the trace counts
    rewards = {rid: r for kind, rid, r in spy.calls if kind == "update"}
    assert [int(sum(rewards[f"replay-{s}"])) for s in range(4)] == res.traces["spy"].clicks.tolist()


def test_lookahead_one_learns_before_the_next_request():
    """Lookahead 1: the reward is the consumption at the request itself, so it is learned
    before the next request (the replay's behaviour for lookahead 1 is unchanged)."""
    spy = _Spy()
    replay(_ring(), [PolicySpec("spy", "spy")], PopularityPrior(),
           ReplayConfig(k=2, n_candidates=3, warmup=0.5, embedding_dim=0), make=lambda spec, feats: spy)
    kinds = [kind for kind, _, _ in spy.calls]
    assert kinds == ["select", "update"] * (len(kinds) // 2)
    assert all(a[1] == b[1] for a, b in zip(spy.calls[::2], spy.calls[1::2], strict=True))


class _OnlyFirstItems:
    """A prior that retrieves only items i0 and i1 (everything else -inf, as a retriever's
    full ranking gives outside its top k)."""

    name = "first-two"

    def fit(self, dataset, warm):
        self.n = dataset.n_items

    def score(self, user, history, candidates):
        out = np.full(self.n, -np.inf)
        out[:2] = [2.0, 1.0]
        return out if candidates is None else out[candidates]


def test_the_candidates_never_hold_the_users_history_or_unretrieved_items():
    """Over the whole catalog (n_candidates >= catalog, as the catalog configs ask), a prior
    that leaves items at -inf tied them with the history's -inf: argpartition could put items
    the user already had among the candidates, where a re-consumption in the window counted
    as a click."""
    from llmrank.explore.replay import _candidates

    prior = _OnlyFirstItems()
    prior.fit(_ring(), [])
    history = np.array([5, 6, 7], np.int64)
    codes, scores = _candidates(prior, 0, history, 8, 1000)
    assert codes.tolist() == [0, 1] and scores.tolist() == [2.0, 1.0]
    codes, _ = _candidates(prior, 0, np.array([0, 5], np.int64), 8, 1000)
    assert codes.tolist() == [1]
    codes, _ = _candidates(prior, 0, np.array([2, 3], np.int64), 8, 6)
    assert not {2, 3} & set(codes.tolist())  # was [0 1 2 3 4 5]: the history as candidates


def test_the_replays_text_vectors_leave_out_user_tags():
    """item_vectors='text' rendered each item with its tags. MovieLens tags are user
    interactions (tags.csv: user, item, tag, timestamp) from the whole log, kept without their
    times, so an item's text vector told the replay which items users would tag later."""
    from llmrank.embed.hashing import HashingEmbedder
    from llmrank.explore.features import text_embeddings

    class Recording(HashingEmbedder):
        def encode(self, texts, **kw):
            self.texts = list(texts)
            return super().encode(texts, **kw)

    items = [Item("a", title="Alpha", genres=("Drama",), tags=("tagged-in-2018",)),
             Item("b", title="Beta", genres=("Comedy",))]
    ds = Dataset.from_records("tags", items, [], [("u", "a", 1, 4.0), ("u", "b", 2, 4.0)])
    emb = Recording(dim=64)
    text_embeddings(ds, dim=2, embedder=emb)
    assert len(emb.texts) == 2 and "Alpha" in emb.texts[0] and "Drama" in emb.texts[0]
    assert not any("tagged" in t for t in emb.texts)
