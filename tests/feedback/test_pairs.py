from __future__ import annotations

import io
import json

from llmrank.feedback import FeedbackEvent, Impression, preference_pairs
from llmrank.feedback.pairs import write_pairs_jsonl
from llmrank.feedback.sqlite_store import SqliteFeedbackStore


def _store(tmp_path) -> SqliteFeedbackStore:
    s = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    ones = (1.0, 1.0, 1.0, 1.0)
    s.log_impression(Impression("r1", "u1", ("a", "b", "c", "d"), (4, 3, 2, 1), ones, "greedy", timestamp=1.0))
    s.log_event(FeedbackEvent("u1", "c", "click", request_id="r1", timestamp=1.1))
    s.log_event(FeedbackEvent("u1", "d", "skip", request_id="r1", timestamp=1.2))
    # second impression: a high rating is positive, a low one is an explicit negative
    s.log_impression(Impression("r2", "u1", ("e", "f", "g"), (3, 2, 1), ones[:3], "greedy", timestamp=2.0))
    s.log_event(FeedbackEvent("u1", "f", "rating", value=5.0, request_id="r2", timestamp=2.1))
    s.log_event(FeedbackEvent("u1", "e", "rating", value=1.0, request_id="r2", timestamp=2.2))
    # no positive: no pairs
    s.log_impression(Impression("r3", "u2", ("a", "b"), (2, 1), ones[:2], "greedy", timestamp=3.0))
    s.log_event(FeedbackEvent("u2", "a", "skip", request_id="r3", timestamp=3.1))
    return s


def test_pairs_shown_above_skipped(tmp_path):
    s = _store(tmp_path)
    shown = preference_pairs(s)
    assert [(p.request_id, p.chosen, p.rejected) for p in shown] == [
        ("r1", "c", "a"), ("r1", "c", "b"), ("r1", "c", "d"), ("r2", "f", "e"), ("r2", "f", "g")]
    above = preference_pairs(s, negatives="above")
    assert {(p.chosen, p.rejected) for p in above} == {("c", "a"), ("c", "b"), ("c", "d"), ("f", "e")}
    skipped = preference_pairs(s, negatives="skipped")
    assert {(p.chosen, p.rejected) for p in skipped} == {("c", "d"), ("f", "e")}


def test_pairs_history_from_store_is_before_the_impression(tmp_path):
    s = _store(tmp_path)
    pairs = preference_pairs(s)
    assert pairs[0].history == ()  # nothing positive before r1
    assert pairs[-1].history == ("c",)  # the click in r1 precedes r2
    assert preference_pairs(s, history=None)[0].history is None
    buf = io.StringIO()
    assert write_pairs_jsonl(pairs, buf) == len(pairs)
    first = json.loads(buf.getvalue().splitlines()[0])
    assert set(first) == {"user_id", "history", "chosen", "rejected", "request_id"}


def test_rejected_is_never_an_item_the_user_clicked_elsewhere(tmp_path):
    """An item shown and not clicked in one slate is no negative when the same user clicked
    (or rated highly) it in another impression or outside any impression (request_id None),
    before or after; another user's clicks on it do not matter."""
    s = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    ones = (1.0, 1.0, 1.0, 1.0, 1.0)
    s.log_impression(Impression("r0", "u1", ("c", "x"), (2, 1), ones[:2], "greedy", timestamp=0.1))
    s.log_event(FeedbackEvent("u1", "c", "click", request_id="r0", timestamp=0.2))
    s.log_event(FeedbackEvent("u1", "b", "click", timestamp=0.5))  # found elsewhere
    s.log_impression(Impression("r1", "u1", ("a", "b", "c", "d", "e"), (5, 4, 3, 2, 1), ones, "greedy",
                                timestamp=1.0))
    s.log_event(FeedbackEvent("u1", "a", "click", request_id="r1", timestamp=1.1))
    s.log_event(FeedbackEvent("u1", "d", "rating", value=5.0, timestamp=9.0))  # later, elsewhere
    s.log_event(FeedbackEvent("u2", "e", "click", timestamp=0.3))  # another user
    got = [(p.request_id, p.chosen, p.rejected) for p in preference_pairs(s)]
    assert got == [("r0", "c", "x"), ("r1", "a", "e")]
    # an explicit skip in this slate does not make it a negative either
    s.log_event(FeedbackEvent("u1", "b", "skip", request_id="r1", timestamp=1.2))
    assert [(p.request_id, p.rejected) for p in preference_pairs(s, negatives="skipped")] == []


def test_store_history_names_an_item_once_at_its_latest_engagement(tmp_path):
    """A click and then a rating of the same item are two positive events; the prompt's
    history named the item twice and the repeat took one of its max_history slots."""
    from llmrank.feedback.pairs import store_history

    s = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    s.log_event(FeedbackEvent("u1", "a", "click", timestamp=1.0))
    s.log_event(FeedbackEvent("u1", "b", "click", timestamp=2.0))
    s.log_event(FeedbackEvent("u1", "a", "rating", value=5.0, timestamp=3.0))
    s.log_event(FeedbackEvent("u1", "c", "click", timestamp=4.0))
    history = store_history(s)
    assert history("u1", 10.0) == ["b", "a", "c"]
    assert history("u1", 2.5) == ["a", "b"]


def test_pairs_read_the_stores_events_once(tmp_path):
    """The liked items and the store history come from one pass over the events (a store
    holds millions; they read it once each); ``rounds`` makes the other read, joining events
    to their impressions."""
    s = _store(tmp_path)
    calls = []
    real = s.events

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    s.events = counted  # type: ignore[method-assign]
    before = [(p.chosen, p.rejected, p.history) for p in preference_pairs(_store(tmp_path / "b"))]
    assert [(p.chosen, p.rejected, p.history) for p in preference_pairs(s)] == before
    assert len(calls) == 2


def test_an_event_without_user_id_belongs_to_the_user_of_its_impression(tmp_path):
    """POST /feedback takes user_id as optional: a click that names only its request_id is
    the click of the impression's user. rounds() counted it for its slate, but the liked
    items and the store history are per event user_id, so the item became a rejected one in
    the same user's next slate and was missing from that user's history."""
    s = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    s.log_impression(Impression("r1", "u1", ("a", "b"), (2, 1), (1.0, 1.0), "greedy", timestamp=1.0))
    s.log_event(FeedbackEvent(None, "b", "click", request_id="r1", timestamp=1.1))
    s.log_impression(Impression("r2", "u1", ("c", "b", "d"), (3, 2, 1), (1.0,) * 3, "greedy", timestamp=2.0))
    s.log_event(FeedbackEvent(None, "c", "click", request_id="r2", timestamp=2.1))
    s.log_impression(Impression("r3", "u1", ("e", "f"), (2, 1), (1.0, 1.0), "greedy", timestamp=3.0))
    s.log_event(FeedbackEvent("u1", "e", "click", request_id="r3", timestamp=3.1))
    got = [(p.request_id, p.chosen, p.rejected, p.history) for p in preference_pairs(s)]
    assert got == [("r1", "b", "a", ()), ("r2", "c", "d", ()), ("r3", "e", "f", ("b", "c"))]
    # an event without user_id and without an impression stays nobody's
    s.log_event(FeedbackEvent(None, "f", "click", timestamp=4.0))
    assert [p.rejected for p in preference_pairs(s)][-1] == "f"


def test_max_pairs_per_impression_zero_keeps_none_and_a_negative_one_is_refused(tmp_path):
    """``max_pairs_per_impression=0`` was falsy and kept every pair; a negative one sliced
    pairs off the end (-1: all but the last) instead of being refused."""
    import pytest

    from llmrank.errors import FeedbackError

    s = _store(tmp_path)
    assert len(preference_pairs(s)) == 5
    assert [(p.request_id, p.rejected) for p in preference_pairs(s, max_pairs_per_impression=1)] == [
        ("r1", "a"), ("r2", "e")]
    assert preference_pairs(s, max_pairs_per_impression=0) == []
    with pytest.raises(FeedbackError, match="max_pairs_per_impression"):
        preference_pairs(s, max_pairs_per_impression=-1)
