"""The FeedbackStore interface. SQLite is the embedded default; a server database (Postgres,
...) implements the same methods and registers under its own name in
``llmrank.registry.feedback_stores``.

Contract every backend keeps:

* A write method returns only after the data is durable (committed). The return is the
  acknowledgement: an acknowledged impression or event is never lost, even if the process is
  killed right after.
* Writes are idempotent: logging the same ``event_id`` twice stores it once, logging the same
  ``request_id`` with the same slate is a no-op (a different slate raises FeedbackError). This
  makes retries after a timeout and re-imports safe.
* Several processes may write at once.
* A time window is ``since <= timestamp < until`` for impressions and events alike (rounds,
  exports and OPE's ``until`` cut-off rely on it: consecutive windows neither overlap nor
  leave a gap).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from llmrank.feedback.records import FeedbackEvent, Impression


@runtime_checkable
class FeedbackStore(Protocol):
    name: str

    def log_impression(self, impression: Impression) -> str:
        """Store one impression durably; returns its request_id."""
        ...

    def log_event(self, event: FeedbackEvent) -> str:
        """Store one event durably; returns its event_id."""
        ...

    def log_many(
        self, impressions: Iterable[Impression] = (), events: Iterable[FeedbackEvent] = ()
    ) -> int:
        """Store a batch atomically (all or nothing); returns the number of records written."""
        ...

    def impression(self, request_id: str) -> Impression | None: ...

    def impressions(
        self, *, user_id: str | None = None, policy: str | None = None,
        since: float | None = None, until: float | None = None,
    ) -> Iterator[Impression]:
        """Impressions in timestamp order, optionally filtered."""
        ...

    def events(
        self, *, request_id: str | None = None, user_id: str | None = None,
        kind: str | None = None, since: float | None = None, until: float | None = None,
    ) -> Iterator[FeedbackEvent]:
        """Events in timestamp order (arrival order breaks ties), optionally filtered."""
        ...

    def counts(self) -> dict[str, int]:
        """{'impressions': n, 'events': n, 'click': n, 'rating': n, 'skip': n}."""
        ...

    def close(self) -> None: ...
