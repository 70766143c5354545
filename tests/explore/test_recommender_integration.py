"""The explore stage inside the Recommender: a bandit policy built from the config, impressions
logged with propensities, feedback acknowledged and learnt from."""

from __future__ import annotations

import time

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.explore.step import ExploreStep
from llmrank.feedback import FeedbackEvent
from llmrank.llm.fake import FakeLLM
from llmrank.recommender import Recommender
from llmrank.records import Candidate, Item, RecRequest, User

ITEMS = [Item(str(i), f"Film {i}", 1990 + i, (("Drama", "Comedy")[i % 2],)) for i in range(30)]


class Retriever:
    name = "fake"

    def retrieve(self, *, history=None, text=None, k=20, filters=None):
        seen = set(history or [])
        ids = [str(i) for i in range(30) if str(i) not in seen][:k]
        return [Candidate(i, 1.0 / (n + 1)) for n, i in enumerate(ids)]


def test_recommender_explores_logs_and_learns(tmp_path):
    rng = np.random.default_rng(0)
    events = [(f"u{u}", str(int(i)), t, 4.0) for u in range(5)
              for t, i in enumerate(rng.choice(30, size=4, replace=False))]
    ds = Dataset.from_records("tiny", ITEMS, [User(f"u{u}") for u in range(5)], events)
    cfg = {"reranker": {"enabled": False}, "seed": 1,
           "policy": {"name": "thompson", "options": {"settle_seconds": 0,
                                                      "objectives": {"max_per": {"genre": 3}}}},
           "feedback": {"path": str(tmp_path / "fb.sqlite")}}
    rec = Recommender.from_config(cfg, dataset=ds, retriever=Retriever(), llm=FakeLLM())
    assert isinstance(rec.explore, ExploreStep)
    assert rec.explore.policy.features is not None  # genres reach the caps rule
    resp = rec.recommend(RecRequest(user_id="u1", k=6, explore=True))
    assert resp.policy == "thompson" and len(resp.items) == 6
    assert all(0.0 < it.propensity <= 1.0 for it in resp.items)
    genres = [ds.items[it.item_id].genres[0] for it in resp.items]
    assert max(genres.count(g) for g in set(genres)) <= 3
    store = rec.explore.store
    imp = store.impression(resp.request_id)
    assert imp is not None and list(imp.items) == resp.item_ids()
    clicked = resp.items[1].item_id
    rec.feedback(FeedbackEvent("u1", clicked, "click", request_id=resp.request_id))
    assert rec.explore.learn(now=imp.timestamp + 1) == 1
    assert rec.explore.policy.item_counts[clicked][0] == 1.0


def test_a_configured_policy_explores_unless_the_request_says_not_to(tmp_path):
    """A config naming an exploring policy explores by default (it silently served greedy
    unless each request asked); explore=False still serves the greedy list."""
    ds = Dataset.from_records("tiny", ITEMS, [User("u1")], [("u1", "0", 0, 4.0)])
    cfg = {"reranker": {"enabled": False}, "policy": {"name": "softmax"},
           "feedback": {"path": str(tmp_path / "fb.sqlite")}}
    rec = Recommender.from_config(cfg, dataset=ds, retriever=Retriever(), llm=FakeLLM())
    assert rec.recommend("u1", k=5).policy == "softmax"
    assert rec.recommend(RecRequest(user_id="u1", k=5)).policy == "softmax"
    greedy = rec.recommend(RecRequest(user_id="u1", k=5, explore=False))
    assert greedy.policy == "greedy" and all(it.propensity == 1.0 for it in greedy.items)
    plain = Recommender.from_config({"reranker": {"enabled": False}}, dataset=ds,
                                    retriever=Retriever(), llm=FakeLLM())
    assert plain.recommend("u1", k=5).policy == "greedy"


def test_familiarity_prior_is_what_the_policy_starts_from(tiny_llm, tmp_path, monkeypatch):
    """[policy] prior = "familiarity": the policy ranks the candidates by the LLM's familiarity
    with their titles (greedy shows the most familiar first); a request that does not explore
    keeps the reranker's (here the retriever's) order."""
    from llmrank.llm.familiarity import catalog_familiarity

    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))  # the familiarity cache stays in the test
    ds = Dataset.from_records("tiny", ITEMS, [User("u1")], [("u1", "3", 1, 4.0), ("u1", "7", 2, 4.0)])
    cfg = {"reranker": {"enabled": False}, "policy": {"name": "greedy", "prior": "familiarity"}}
    rec = Recommender.from_config(cfg, dataset=ds, retriever=Retriever(), llm=tiny_llm)
    fam = dict(zip(ds.item_ids, catalog_familiarity(ds, tiny_llm).tolist(), strict=True))
    cands = [c.item_id for c in Retriever().retrieve(history=["3", "7"], k=20)]
    explored = [it.item_id for it in rec.recommend(RecRequest(user_id="u1", k=6, explore=True)).items]
    assert explored == sorted(cands, key=lambda i: -fam[i])[:6]
    assert explored != cands[:6]  # the tiny model's familiarity is not the retriever's order
    plain = [it.item_id for it in rec.recommend(RecRequest(user_id="u1", k=6, explore=False)).items]
    assert plain == cands[:6]


def test_familiarity_prior_without_scores_is_a_config_error():
    import pytest

    from llmrank.config import load_config
    from llmrank.errors import ConfigError

    cfg = load_config({"policy": {"name": "thompson", "prior": "familiarity"}})
    with pytest.raises(ConfigError, match="familiarity"):
        ExploreStep.from_config(cfg, open_feedback=False)


def test_a_platform_without_a_log_runs_linucb_on_text_vectors(tiny_llm, tmp_path, monkeypatch):
    """The no-log deployment of eval/RESULTS.md 7(c): a text retriever, LinUCB whose context
    is the text index's item vectors and whose prior feature is the LLM's familiarity; one
    click moves the bandit's weights."""
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))
    ds = Dataset.from_records("tiny", ITEMS, [User("u1")], [("u1", "3", 1, 4.0), ("u1", "7", 2, 4.0)])
    cfg = {"reranker": {"enabled": False}, "retriever": {"kind": "text"},
           "embedder": {"backend": "hashing"}, "seed": 0,
           "policy": {"name": "linucb", "prior": "familiarity", "options": {"settle_seconds": 0}},
           "feedback": {"path": str(tmp_path / "fb.sqlite")}}
    rec = Recommender.from_config(cfg, dataset=ds, llm=tiny_llm)
    policy = rec.explore.policy
    emb = policy.features.embeddings
    assert emb is not None and emb.shape[0] == len(ITEMS)  # vectors from the text index
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0)
    resp = rec.recommend(RecRequest(user_id="u1", k=5, explore=True))
    assert resp.policy == "linucb" and len(resp.items) == 5
    assert not {"3", "7"} & set(resp.item_ids())
    before = policy.b.copy()
    imp = rec.explore.store.impression(resp.request_id)
    rec.feedback(FeedbackEvent("u1", resp.items[0].item_id, "click", request_id=resp.request_id))
    assert rec.explore.learn(now=imp.timestamp + 1) == 1
    assert not np.allclose(policy.b, before)


def test_the_explore_stage_learns_from_feedback_by_itself(tmp_path):
    """No separate job: a request folds settled feedback into the policy first, at most every
    learn_every_seconds; Recommender.learn() does it on demand."""
    ds = Dataset.from_records("tiny", ITEMS, [User("u1")], [("u1", "3", 1, 4.0)])

    def recommender(every: float) -> Recommender:
        cfg = {"reranker": {"enabled": False}, "seed": 0, "feedback": {"path": str(tmp_path / f"{every}.sqlite")},
               "policy": {"name": "thompson", "options": {"settle_seconds": 0, "learn_every_seconds": every}}}
        return Recommender.from_config(cfg, dataset=ds, retriever=Retriever(), llm=FakeLLM())

    rec = recommender(0)
    first = rec.recommend(RecRequest(user_id="u1", k=4, explore=True))
    clicked = first.items[0].item_id
    rec.feedback(FeedbackEvent("u1", clicked, "click", request_id=first.request_id))
    time.sleep(0.01)  # settled: older than settle_seconds = 0
    rec.recommend(RecRequest(user_id="u1", k=4, explore=True))
    assert rec.explore.policy.item_counts[clicked][0] == 1.0  # learnt before the second request
    assert rec.learn() == 1  # the second request's impression, now settled too

    rec = recommender(3600)  # the first request learns (nothing yet), the next hour does not
    first = rec.recommend(RecRequest(user_id="u1", k=4, explore=True))
    rec.feedback(FeedbackEvent("u1", first.items[0].item_id, "click", request_id=first.request_id))
    time.sleep(0.01)
    rec.recommend(RecRequest(user_id="u1", k=4, explore=True))
    assert first.items[0].item_id not in rec.explore.policy.item_counts
    assert rec.learn() == 2 and rec.explore.policy.item_counts[first.items[0].item_id][0] == 1.0


def _must_recommender(tmp_path, must):
    ds = Dataset.from_records("tiny", ITEMS, [User("u1")], [("u1", "3", 0, 4.0), ("u1", "4", 1, 4.0)])
    cfg = {"reranker": {"enabled": False}, "seed": 1,
           "policy": {"name": "egreedy", "options": {"objectives": {"must": must}}},
           "feedback": {"path": str(tmp_path / "fb.sqlite")}}
    return Recommender.from_config(cfg, dataset=ds, retriever=Retriever(), llm=FakeLLM())


def test_a_must_item_retrieval_missed_is_shown_and_logged_as_shown(tmp_path):
    """A must-show business rule shows its item even when retrieval did not return it, and
    the logged impression is exactly the returned slate (k items, same positions)."""
    rec = _must_recommender(tmp_path, ["29"])
    resp = rec.recommend(RecRequest(user_id="u1", k=3, explore=True, n_candidates=5))
    assert resp.item_ids()[0] == "29" and len(resp.items) == 3
    assert resp.items[0].title == "Film 29" and resp.items[0].propensity == 1.0
    imp = rec.explore.store.impression(resp.request_id)
    assert imp is not None and list(imp.items) == resp.item_ids()
    assert list(imp.propensities) == [it.propensity for it in resp.items]


def test_a_must_item_the_request_rules_out_is_neither_shown_nor_logged(tmp_path):
    """The request's filters (deny, allow, attributes) and exclude_seen win over the rule:
    the item is left out before the slate is chosen, so the response still has k items and
    the log matches it."""
    from llmrank.records import Filters

    rec = _must_recommender(tmp_path, ["29", "3"])  # "3" is in u1's history
    for filters in (Filters(deny=frozenset({"29"})), Filters(attributes={"genre": frozenset({"drama"})})):
        resp = rec.recommend(RecRequest(user_id="u1", k=3, explore=True, n_candidates=5, filters=filters))
        assert "29" not in resp.item_ids() and "3" not in resp.item_ids() and len(resp.items) == 3
        imp = rec.explore.store.impression(resp.request_id)
        assert imp is not None and list(imp.items) == resp.item_ids()
    shown = rec.recommend(RecRequest(user_id="u1", k=3, explore=True, n_candidates=5,
                                     filters=Filters(exclude_seen=False)))
    assert shown.item_ids()[:2] == ["29", "3"]


def test_feedback_tied_to_a_request_must_match_what_it_showed(tmp_path):
    import pytest

    from llmrank.errors import FeedbackError

    ds = Dataset.from_records("tiny", ITEMS, [User("u1"), User("u2")],
                              [("u1", "0", 0, 4.0), ("u2", "1", 0, 4.0)])
    cfg = {"reranker": {"enabled": False}, "feedback": {"path": str(tmp_path / "fb.sqlite")}}
    rec = Recommender.from_config(cfg, dataset=ds, retriever=Retriever(), llm=FakeLLM())
    resp = rec.recommend("u1", k=3)
    shown, hidden = resp.item_ids()[0], "29"
    assert hidden not in resp.item_ids()
    for bad, what in [(FeedbackEvent("u1", shown, "click", request_id="nope"), "unknown request_id"),
                      (FeedbackEvent("u1", hidden, "click", request_id=resp.request_id), "not shown"),
                      (FeedbackEvent("u2", shown, "click", request_id=resp.request_id), "another user")]:
        with pytest.raises(FeedbackError, match=what):
            rec.feedback(bad)
    assert rec.feedback(FeedbackEvent("u1", shown, "click", request_id=resp.request_id))
    assert rec.feedback(FeedbackEvent("u1", hidden, "click"))  # found elsewhere: no request
