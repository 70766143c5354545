from __future__ import annotations

import time

from llmrank.config import load_config
from llmrank.explore.step import ExploreStep
from llmrank.feedback import FeedbackEvent
from llmrank.feedback.sqlite_store import SqliteFeedbackStore
from llmrank.records import RankedItem, RecRequest

RANKED = [RankedItem(item_id=f"i{j}", score=float(10 - j), position=j, rerank_score=float(10 - j),
                     title=f"Item {j}") for j in range(12)]


def _step(tmp_path, name="thompson", options=None):
    cfg = load_config({"seed": 3, "policy": {"name": name, "options": options or {"settle_seconds": 0}},
                       "feedback": {"path": str(tmp_path / "fb.sqlite")}})
    return ExploreStep.from_config(cfg)


def test_step_shows_logs_and_learns(tmp_path):
    step = _step(tmp_path)
    req = RecRequest(user_id="u1", k=4, explore=True)
    shown = step(req, RANKED, history=["x", "y"])
    assert [s.position for s in shown] == [0, 1, 2, 3]
    assert all(0 < s.propensity <= 1 for s in shown)
    assert shown[0].title.startswith("Item")  # the reranker's fields survive
    store = step.store
    assert isinstance(store, SqliteFeedbackStore)
    imp = store.impression(req.request_id)
    assert imp is not None and imp.policy == "thompson" and len(imp.candidates) == 12
    clicked = shown[2].item_id
    step.feedback(FeedbackEvent("u1", clicked, "click", request_id=req.request_id))
    assert step.learn(now=imp.timestamp + 10) == 1
    counts = step.policy.item_counts  # type: ignore[attr-defined]
    assert counts[clicked][0] == 1.0
    assert counts[shown[0].item_id][:2] == [0.0, 1.0]
    assert step.learn(now=imp.timestamp + 20) == 0  # nothing new


def test_step_without_explore_is_greedy(tmp_path):
    step = _step(tmp_path)
    shown = step(RecRequest(user_id="u1", k=3, explore=False), RANKED)
    assert [s.item_id for s in shown] == ["i0", "i1", "i2"]
    assert [s.propensity for s in shown] == [1.0, 1.0, 1.0]


def test_step_segments_from_a_user_attribute(tmp_path):
    """segment_key + users: the request's segment is the user's attribute, logged with the
    impression, and learn() feeds the per-segment posterior of that segment."""
    from llmrank.records import User

    cfg = load_config({"seed": 3, "policy": {"name": "thompson",
                                             "options": {"settle_seconds": 0, "segment_key": "age"}},
                       "feedback": {"path": str(tmp_path / "fb.sqlite")}})
    users = {"u1": User("u1", {"age": "25"}), "u2": User("u2", {})}
    step = ExploreStep.from_config(cfg, users=users)
    assert step.segment_of("u1") == "25" and step.segment_of("u2") is None
    assert step.segment_of("nobody") is None and step.segment_of(None) is None
    req = RecRequest(user_id="u1", k=3, explore=True)
    shown = step(req, RANKED)
    store = step.store
    assert isinstance(store, SqliteFeedbackStore)
    imp = store.impression(req.request_id)
    assert imp is not None and imp.context.get("segment") == "25"
    step.feedback(FeedbackEvent("u1", shown[0].item_id, "click", request_id=req.request_id))
    assert step.learn(now=imp.timestamp + 10) == 1
    seg_counts = step.policy.segment_counts  # type: ignore[attr-defined]
    assert seg_counts[("25", shown[0].item_id)][0] == 1.0
    # an explicit segment from the caller wins over the attribute
    req2 = RecRequest(user_id="u1", k=3, explore=True)
    step(req2, RANKED, segment="vip")
    imp2 = store.impression(req2.request_id)
    assert imp2 is not None and imp2.context.get("segment") == "vip"


def test_step_segment_key_without_users_warns(tmp_path, caplog):
    cfg = load_config({"seed": 3, "policy": {"name": "thompson", "options": {"segment_key": "age"}},
                       "feedback": {"path": str(tmp_path / "fb.sqlite")}})
    with caplog.at_level("WARNING"):
        step = ExploreStep.from_config(cfg)
    assert "segment_key" in caplog.text and step.segment_of("u1") is None


def test_learn_never_counts_an_impression_twice_when_now_goes_back(tmp_path):
    """A ``now`` earlier than the last call's (a clock stepped back) learns nothing: the window
    only moves forward, so the next call does not fold the same feedback in again."""
    step = _step(tmp_path)
    req = RecRequest(user_id="u1", k=3, explore=True)
    shown = step(req, RANKED)
    step.feedback(FeedbackEvent("u1", shown[0].item_id, "click", request_id=req.request_id))
    imp = step.store.impression(req.request_id)  # type: ignore[union-attr]
    assert imp is not None
    t = imp.timestamp
    assert step.learn(now=t + 10) == 1
    assert step.learn(now=t - 10) == 0 and step.learned_until == t + 10
    assert step.learn(now=t + 20) == 0
    assert step.policy.item_counts[shown[0].item_id][0] == 1.0  # type: ignore[attr-defined]


def test_learn_counts_a_click_stamped_before_the_window(tmp_path):
    """Events join their impression by request_id: a click whose client clock runs behind the
    server's (stamped before the learned window) is still a reward for that impression."""
    step = _step(tmp_path)
    step.learn()
    before = step.learned_until
    assert before is not None
    req = RecRequest(user_id="u1", k=3, explore=True)
    shown = step(req, RANKED)
    step.feedback(FeedbackEvent("u1", shown[0].item_id, "click", request_id=req.request_id,
                                timestamp=before - 2))
    assert step.learn(now=time.time() + 1) == 1
    assert step.policy.item_counts[shown[0].item_id][0] == 1.0  # type: ignore[attr-defined]


def test_an_empty_slate_is_served_and_not_logged(tmp_path):
    """Nothing to rank (every candidate filtered out): the step shows nothing and logs
    nothing, instead of failing the request on an impression without items."""
    step = _step(tmp_path)
    req = RecRequest(user_id="u1", k=3, explore=True)
    assert step(req, []) == []
    assert step.store.impression(req.request_id) is None  # type: ignore[union-attr]


def test_learn_sees_the_history_the_policy_selected_with(tmp_path):
    """The impression keeps the request's (recent) history, so learn() updates a linear bandit
    with the same user x item features select() used, not zeros."""
    import numpy as np

    from llmrank.explore import make_policy
    from llmrank.explore.base import ExploreContext
    from llmrank.explore.features import ItemFeatures
    from llmrank.explore.step import slate_of

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 4))
    feats = ItemFeatures([f"i{j}" for j in range(30)], emb / np.linalg.norm(emb, axis=1, keepdims=True))
    ranked = [RankedItem(item_id=f"i{j}", score=float(20 - j), position=j) for j in range(10, 30)]
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    step = ExploreStep(make_policy("linucb", {"seed": 0}, features=feats), store, settle_seconds=0,
                       learn_every_seconds=-1, features=feats, history_items=3)
    history = ["i9", "i0", "i1", "i2"]
    for _ in range(5):
        req = RecRequest(user_id="u1", k=3, explore=True)
        shown = step(req, ranked, history=history)
        step.feedback(FeedbackEvent("u1", shown[0].item_id, "click", request_id=req.request_id))
    imps = list(store.impressions())
    assert all(imp.context["history"] == ["i0", "i1", "i2"] for imp in imps)  # the 3 most recent
    assert step.learn(now=time.time() + 1) == 5
    direct = make_policy("linucb", {"seed": 0}, features=feats)
    ctx = ExploreContext(user_id="u1", history=["i0", "i1", "i2"])
    for imp in imps:
        s = slate_of(imp)
        direct.update(ctx, s, [1.0] + [0.0] * (len(s.items) - 1))
    assert np.allclose(step.policy.theta, direct.theta)  # type: ignore[attr-defined]
    assert np.abs(step.policy.theta[1:-1]).max() > 0  # type: ignore[attr-defined]


def test_a_request_served_greedily_keeps_the_business_rules(tmp_path):
    """explore=False turns exploration off, not the configured must-show / must-not rules."""
    step = _step(tmp_path, options={"settle_seconds": 0,
                                    "objectives": {"must": ["i7"], "must_not": ["i0", "i2"]}})
    for explore in (True, False):
        shown = [s.item_id for s in step(RecRequest(user_id="u1", k=3, explore=explore), RANKED)]
        assert shown[0] == "i7", explore
        assert "i0" not in shown and "i2" not in shown, explore
    assert [s.item_id for s in step(RecRequest(user_id="u1", k=3, explore=False), RANKED)] == [
        "i7", "i1", "i3"]


def test_an_impression_the_policy_cannot_learn_from_is_skipped_not_relearned(tmp_path, caplog):
    """An update that raised left the window where it was: the next learn() folded the
    impressions before the bad one in again (counted twice), and the bad one blocked learning
    for good. It is skipped with a warning; the others are learned once."""
    step = _step(tmp_path)
    reqs = [RecRequest(user_id=f"u{j}", k=3, explore=True) for j in range(3)]
    for req in reqs:
        shown = step(req, RANKED)
        step.feedback(FeedbackEvent(req.user_id, shown[0].item_id, "click", request_id=req.request_id))
    real_update = step.policy.update
    calls = []

    def flaky(context, slate, rewards):
        calls.append(context.request_id)
        if context.request_id == reqs[1].request_id:
            raise ValueError("cannot learn from this one")
        real_update(context, slate, rewards)

    step.policy.update = flaky  # type: ignore[method-assign]
    now = time.time() + 10
    assert step.learn(now=now) == 2
    assert any("cannot learn" in r.getMessage() for r in caplog.records)
    assert step.learn(now=now + 10) == 0
    assert calls == [r.request_id for r in reqs]  # each tried once


def test_select_and_update_take_turns_across_threads(tmp_path, concurrency_probe):
    """A server serves requests in a thread pool while Recommender.learn (or the step's own
    periodic learning) updates the policy; a policy's posteriors and random generator are not
    thread-safe, so select and update must never run at the same time."""
    import threading

    step = _step(tmp_path, options={"settle_seconds": 0, "learn_every_seconds": -1})
    for j in range(8):
        req = RecRequest(user_id=f"u{j}", k=3, explore=True)
        shown = step(req, RANKED)
        step.feedback(FeedbackEvent(req.user_id, shown[0].item_id, "click", request_id=req.request_id))
    step.policy.select = concurrency_probe.wrap(step.policy.select, delay=0.002)  # type: ignore[method-assign]
    step.policy.update = concurrency_probe.wrap(step.policy.update, delay=0.002)  # type: ignore[method-assign]

    def serve():
        for j in range(15):
            step(RecRequest(user_id=f"s{j}", k=3, explore=True), RANKED)

    threads = [threading.Thread(target=serve) for _ in range(3)]
    threads.append(threading.Thread(target=lambda: step.learn(now=time.time() + 10)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert concurrency_probe.peak == 1  # both ran, never at the same time


def test_a_retried_request_gets_the_logged_slate_back(tmp_path):
    """request_id is an idempotency key: under an exploring policy a retry drew a new slate,
    which the store refused as a conflict (HTTP 409), so a client that lost the response could
    not get it again. Now the logged slate is served again, without a new draw or record; the
    same id from another user is a conflict."""
    import pytest

    from llmrank.errors import FeedbackConflictError

    step = _step(tmp_path, "egreedy", {"epsilon": 1.0, "settle_seconds": 0})
    req = RecRequest(user_id="u1", k=4, explore=True, request_id="r-1")
    first = step(req, RANKED)
    draws = [[s.item_id for s in step(RecRequest(user_id="u1", k=4, explore=True), RANKED)] for _ in range(5)]
    assert any(d != [s.item_id for s in first] for d in draws)  # the policy does explore
    for _ in range(3):
        again = step(RecRequest(user_id="u1", k=4, explore=True, request_id="r-1"), RANKED)
        assert [(s.item_id, s.position, s.propensity) for s in again] == \
            [(s.item_id, s.position, s.propensity) for s in first]
    assert step.store.counts()["impressions"] == 6
    with pytest.raises(FeedbackConflictError, match="already used"):
        step(RecRequest(user_id="u2", k=4, explore=True, request_id="r-1"), RANKED)


def test_an_impression_written_while_learn_runs_is_learned_once(tmp_path):
    """settle_seconds = 0 and a slow store: an impression stamped before a concurrent learn()
    but written after it fell behind that learn's window, and every later learn() starts
    after it: never learned. Now the stamp and the write happen together, before learn()
    fixes its window."""
    import threading

    step = _step(tmp_path, "thompson", {"settle_seconds": 0, "learn_every_seconds": -1})
    real = step.store.log_impression
    writing = threading.Event()

    def slow_write(imp):
        writing.set()
        time.sleep(0.3)  # a busy SQLite file
        return real(imp)

    step.store.log_impression = slow_write
    serve = threading.Thread(target=step, args=(RecRequest(user_id="u1", k=3, explore=True), RANKED))
    serve.start()
    writing.wait(5)
    learned = [step.learn()]  # runs while the impression is being written
    serve.join()
    time.sleep(0.01)
    learned.append(step.learn())
    assert sum(learned) == 1
