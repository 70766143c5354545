from __future__ import annotations

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
