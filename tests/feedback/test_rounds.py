"""rounds(): impressions joined with their events by request_id."""

from __future__ import annotations

from llmrank.feedback import FeedbackEvent
from llmrank.feedback.records import Impression
from llmrank.feedback.rounds import rounds
from llmrank.feedback.sqlite_store import SqliteFeedbackStore


def _imp(rid: str, ts: float) -> Impression:
    return Impression(rid, "u1", ("a", "b"), (1.0, 0.5), (1.0, 1.0), "greedy", timestamp=ts)


def test_events_join_by_request_id_whatever_their_timestamps():
    """A window of impressions gets the events of exactly those impressions, even events
    stamped before the window (a client clock behind the server's) or after it."""
    store = SqliteFeedbackStore(":memory:")
    store.log_many([_imp("old", 50.0), _imp("r1", 100.0), _imp("late", 300.0)], [
        FeedbackEvent("u1", "b", "click", request_id="r1", timestamp=90.0),
        FeedbackEvent("u1", "a", "skip", request_id="r1", timestamp=500.0),
        FeedbackEvent("u1", "a", "click", request_id="old", timestamp=95.0),
    ])
    got = [(r.impression.request_id, r.rewards, r.skipped)
           for r in rounds(store, since=99.0, until=200.0)]
    assert got == [("r1", (0.0, 1.0), (True, False))]
    everything = {r.impression.request_id: r.rewards for r in rounds(store)}
    assert everything == {"old": (1.0, 0.0), "r1": (0.0, 1.0), "late": (0.0, 0.0)}


class _WritesAfterEachEventRead:
    """A store on which another writer logs a new impression and its click right after every
    read of the events (the worst moment for a reader that reads events, then impressions)."""

    name = "sqlite"

    def __init__(self, store: SqliteFeedbackStore) -> None:
        self.store = store
        self.n = 0

    def impressions(self, **kw):
        return self.store.impressions(**kw)

    def events(self, **kw):
        yield from list(self.store.events(**kw))
        self.n += 1
        rid = f"new{self.n}"
        self.store.log_many([_imp(rid, 150.0)],
                            [FeedbackEvent("u1", "a", "click", request_id=rid, timestamp=151.0)])


def test_a_round_never_misses_an_event_committed_before_its_impression_was_read(tmp_path):
    """An impression written while rounds() runs either is not in the result or comes with
    its click: never with reward 0 for a slate that was clicked (the events must be read
    after the impressions they are joined to)."""
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite")
    store.log_many([_imp("r1", 100.0)], [FeedbackEvent("u1", "b", "click", request_id="r1", timestamp=101.0)])
    for window in ({}, {"until": 200.0}, {"since": 0.0, "until": 200.0}):
        got = list(rounds(_WritesAfterEachEventRead(store), **window))  # type: ignore[arg-type]
        # r1 was committed before rounds() began: it is always there, with its click
        assert [r.impression.request_id for r in got][:1] == ["r1"], window
        assert got[0].rewards == (0.0, 1.0), window
        for rnd in got:
            assert any(rnd.rewards), (window, rnd.impression.request_id, rnd.rewards)
