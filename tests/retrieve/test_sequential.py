"""Sequential retriever: training learns a sequential pattern, early stopping keeps the best
epoch, runs are deterministic, save/load is exact, filters and exclusion work inside the
search, and hard negatives never contain the target or seen items."""

from __future__ import annotations

import numpy as np
import pytest
from _seq_fixtures import tiny_config

from llmrank.config import load_config
from llmrank.data.splits import LeaveOneOut
from llmrank.errors import ConfigError
from llmrank.records import Filters
from llmrank.registry import retrievers
from llmrank.retrieve import load_retriever, save_retriever
from llmrank.retrieve.base import PersistentRetriever
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.evaluate import split_ranks, summarize
from llmrank.retrieve.sequential.retriever import SequentialRetriever, dataset_info
from llmrank.retrieve.sequential.synthetic import cyclic_dataset, item_id
from llmrank.retrieve.sequential.train import holdout_split, train_sequential
from llmrank.retrieve.sequential.windows import pad_left, training_windows


@pytest.fixture(scope="module")
def dataset():
    return cyclic_dataset()


@pytest.fixture(scope="module")
def split(dataset):
    return LeaveOneOut.from_dataset(dataset)


@pytest.fixture(scope="module")
def trained(split):
    return train_sequential(split, tiny_config("sasrec"))


@pytest.fixture(scope="module")
def retriever(dataset):
    cfg = load_config({"seed": 0})
    return SequentialRetriever.build(dataset, cfg, seq_config=tiny_config("sasrec"))


def test_windows_cover_every_target_once():
    hist = [np.arange(10), np.arange(3), np.arange(1)]
    wins = training_windows(hist, max_len=4)
    targets = sorted(int(t) for w in wins for t in w[1:])
    # user 0: targets items 1..9 (tokens 2..10); user 1: tokens 2, 3; user 2: nothing
    assert targets == sorted([*range(2, 11), 2, 3])
    assert all(len(w) <= 5 for w in wins)
    assert pad_left([np.array([5, 6])], 4).tolist() == [[0, 0, 5, 6]]


@pytest.mark.parametrize("model", ["lru", "sasrec"])
def test_training_learns_the_cycle(split, model):
    result = train_sequential(split, tiny_config(model))
    test = summarize(split_ranks(result.model.scores, split, "test"), ks=(1, 10))
    # 40 items: random guessing gets recall@1 about 0.03; the cycle makes the next item certain
    assert test["recall@1"] > 0.8
    assert test["ndcg@10"] > 0.85


def test_early_stopping_keeps_best_epoch(split):
    cfg = tiny_config("lru", epochs=30, patience=3)
    result = train_sequential(split, cfg)
    validated = [h for h in result.history if h.metrics]
    best = max(validated, key=lambda h: h.metrics["ndcg@10"])
    assert result.best_epoch == best.epoch and best.best
    assert result.best_metric == pytest.approx(best.metrics["ndcg@10"])
    # the returned model is the best epoch's, not the last one's
    again = summarize(split_ranks(result.model.scores, split, "valid"))["ndcg@10"]
    assert again == pytest.approx(result.best_metric)
    if result.stopped_early:
        assert len(result.history) == result.best_epoch + cfg.patience


def test_without_validation_users_every_epoch_runs_and_the_last_is_kept(split, caplog):
    """Every history shorter than 3: validation scored 0.0, epoch 1 'won', training stopped
    after ``patience`` epochs and silently returned the epoch-1 weights."""
    import dataclasses

    blind = dataclasses.replace(split, valid_target=np.full_like(split.valid_target, -1))
    result = train_sequential(blind, tiny_config("lru", epochs=5, patience=1))
    assert len(result.history) == 5 and result.best_epoch == 5 and not result.stopped_early
    assert "no validation user" in caplog.text
    # nothing was validated: no metric, not the -1.0 start value read as a measured NDCG
    assert np.isnan(result.best_metric) and result.model.meta["best_valid_ndcg10"] is None


def test_a_diverged_run_stops_with_the_best_weights_and_says_so(split, caplog, monkeypatch):
    """A NaN loss used to train on to the last epoch (NaN validation never 'improved') and
    return the untrained weights without a word."""
    import torch

    from llmrank.retrieve.sequential import train as train_mod

    real_epoch = train_mod._Run.epoch
    calls = []

    def epoch(self, on_step=None):
        calls.append(1)
        loss = real_epoch(self, on_step)
        if len(calls) >= 3:
            with torch.no_grad():
                for p in self.net.parameters():
                    p.fill_(float("nan"))
            return float("nan")
        return loss

    monkeypatch.setattr(train_mod._Run, "epoch", epoch)
    result = train_sequential(split, tiny_config("lru", epochs=10, patience=5))
    assert len(calls) == 3 and result.stopped_early
    assert 1 <= result.best_epoch <= 2 and "diverged at epoch 3" in caplog.text
    scores = result.model.scores([np.array([1, 2], np.int64)])
    assert np.isfinite(scores).all()  # the best epoch's weights, not the NaN ones


def test_training_is_deterministic(split, trained):
    again = train_sequential(split, tiny_config("sasrec"))
    np.testing.assert_array_equal(again.model.item_vectors(), trained.model.item_vectors())


def test_holdout_split_validates_on_last_item(dataset):
    s = holdout_split(dataset)
    u = dataset.user_code("u0")
    hist = dataset.histories()[u]
    assert s.valid_target[u] == hist[-1] and list(s.train[u]) == list(hist[:-1])


def test_user_vectors_match_scores(trained, split):
    model = trained.model
    hists = [split.history(int(u), "test") for u in split.eval_users()[:5]]
    scores = model.scores(hists)
    assert scores.shape == (5, model.n_items)
    np.testing.assert_allclose(model.user_vectors(hists) @ model.item_vectors().T, scores)
    empty = model.user_vectors([np.array([], dtype=np.int64)])
    assert empty[0, :-1].tolist() == [0.0] * model.config.hidden and empty[0, -1] == 1.0


def test_retriever_follows_the_cycle_and_excludes_seen(retriever):
    hist = [item_id(1, p) for p in (3, 4, 5)]
    cands = retriever.retrieve(history=hist, k=5)
    assert cands[0].item_id == item_id(1, 6)
    assert not {c.item_id for c in cands} & set(hist)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    # exclude_seen=False lets history items back in
    kept = retriever.retrieve(history=hist, k=40, filters=Filters(exclude_seen=False))
    assert set(hist) <= {c.item_id for c in kept}


def test_filters_inside_retrieval(retriever):
    hist = [item_id(1, p) for p in (3, 4, 5)]
    deny = retriever.retrieve(history=hist, k=5, filters=Filters(deny=frozenset({item_id(1, 6)})))
    assert item_id(1, 6) not in {c.item_id for c in deny} and len(deny) == 5
    allow = frozenset({item_id(0, 1), item_id(2, 2), item_id(1, 6), item_id(1, 4)})
    got = retriever.retrieve(history=hist, k=10, filters=Filters(allow=allow))
    # seen item 1/4 is excluded; the cycle's next item wins among the allowed
    assert got[0].item_id == item_id(1, 6) and len(got) == 3
    only = retriever.retrieve(history=hist, k=8,
                              filters=Filters(attributes={"genre": frozenset({"horror"})}))
    assert len(only) == 8 and all(c.item_id.startswith("g2") for c in only)
    studio = retriever.retrieve(history=hist, k=4,
                                filters=Filters(attributes={"studio": frozenset({"north"})}))
    assert all(int(c.item_id.split("i")[1]) % 2 == 1 for c in studio)


def test_hard_negatives_exclude_target_and_history(retriever):
    hist = [item_id(3, p) for p in (0, 1, 2)]
    target = item_id(3, 3)
    negs = retriever.hard_negatives(hist, 6, exclude={target})
    assert len(negs) == 6 and target not in negs and not set(negs) & set(hist)
    top = [c.item_id for c in retriever.retrieve(history=hist, k=7)]
    assert top[0] == target and negs == top[1:]  # the hardest: right after the target
    many = retriever.hard_negatives_many([hist, hist[:1]], 3, excludes=[{target}, set()])
    assert many[0] == negs[:3] and item_id(3, 0) not in many[1]


def test_empty_history_and_text(retriever):
    assert len(retriever.retrieve(history=[], k=7)) == 7  # learned-bias (popularity) fallback
    assert len(retriever.retrieve(history=["not-an-item"], k=3)) == 3
    with pytest.raises(ConfigError):
        retriever.retrieve(text="cowboys", k=3)


def test_save_load_round_trip(retriever, tmp_path):
    manifest = save_retriever(retriever, tmp_path / "seq")
    assert manifest.kind == "sequential" and manifest.dim == 17 and manifest.n_items == 40
    loaded = load_retriever(tmp_path / "seq")
    assert isinstance(loaded, SequentialRetriever) and isinstance(loaded, PersistentRetriever)
    hists = [[item_id(0, 2), item_id(0, 3)], [item_id(2, 7)]]
    f = Filters(deny=frozenset({item_id(0, 4)}))
    assert loaded.retrieve_many(hists, k=10, filters=f) == retriever.retrieve_many(hists, k=10, filters=f)
    np.testing.assert_array_equal(loaded.model.item_vectors(), retriever.model.item_vectors())
    assert loaded.items[item_id(2, 7)].genres == ("horror",)


def test_dataset_info_records_the_full_data_config(dataset):
    cfg = load_config({"data": {"dataset": "ml-latest-small", "min_rating": 4.0, "kcore": 5,
                                "format": "movielens", "options": {"name": "x"}}})
    info = dataset_info(dataset, cfg)  # the fused retriever records the same
    assert info.data_config == cfg.data.model_dump(mode="json")
    assert (info.source, info.kcore, info.n_items) == ("ml-latest-small", 5, dataset.n_items)


def test_registered_and_configurable():
    assert retrievers.get("sequential") is SequentialRetriever
    cfg = load_config({"seed": 7, "retriever": {"options": {"sequential": {"hidden": 8}}}})
    from llmrank.retrieve.sequential.retriever import sequential_config

    sc = sequential_config(cfg)
    assert sc.hidden == 8 and sc.seed == 7
    with pytest.raises(ConfigError):
        sequential_config(load_config({"retriever": {"options": {"sequential": {"model": "x"}}}}))
    assert SequentialConfig.from_dict({**sc.to_dict(), "unknown": 1}) == sc


@pytest.mark.parametrize("kind", ["sequential", "fused"])
def test_eval_harness_ranker_adapter(split, kind):
    """The eval harness's RetrieverRanker builds the retriever on what the stage makes
    visible and scores through its index: the cycle's next item comes first."""
    from llmrank.eval.metrics import target_ranks
    from llmrank.registry import rankers

    options = {"sequential": tiny_config("sasrec").to_dict()}
    ranker = rankers.create("retriever", kind=kind, k=40, config={
        "embedder": {"backend": "hashing"}, "retriever": {"options": options}})
    ranker.fit(split, "test")
    users = split.eval_users()[:30]
    scores = ranker.score(users, None, "test")
    assert scores.shape == (30, split.dataset.n_items)
    ranks = target_ranks(scores, split.test_target[users])
    assert np.mean(ranks == 1) > 0.8


def test_similar_items_and_build_info(retriever):
    from llmrank.errors import UnknownItemError

    got = retriever.similar_items(item_id(2, 4), k=3)
    assert got[0].item_id == item_id(2, 5) and item_id(2, 4) not in {c.item_id for c in got}
    with pytest.raises(UnknownItemError):
        retriever.similar_items("nope")
    assert retriever.build_info["best_epoch"] >= 1


def test_refit_trains_on_validation_items_for_the_best_epoch_count(split, trained):
    result = train_sequential(split, tiny_config("sasrec", refit=True))
    assert result.model.meta["refit"] and result.best_epoch == trained.best_epoch
    assert not np.array_equal(result.model.item_vectors(), trained.model.item_vectors())
    test = summarize(split_ranks(result.model.scores, split, "test"), ks=(1,))
    assert test["recall@1"] > 0.8


def test_similar_items_never_returns_the_item_itself(retriever):
    """The item is excluded whatever ``exclude_seen`` says (it is the query, not a pick)."""
    seed = item_id(2, 4)
    got = retriever.similar_items(seed, k=40, filters=Filters(exclude_seen=False))
    assert seed not in {c.item_id for c in got} and len(got) == 39
