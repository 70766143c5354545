"""Join impressions with their events into rounds: (impression, reward of each shown slot).

This is the view that learning and off-policy evaluation need. How events become a reward is
one small function (``RewardSpec``): a click is 1, a rating is 1 when it reaches a threshold,
a skip is 0; an item shown and not acted on is 0."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from llmrank.feedback.base import FeedbackStore
from llmrank.feedback.records import FeedbackEvent, Impression


@dataclass(frozen=True)
class RewardSpec:
    """Which events count as a positive outcome for a shown item."""

    click: float = 1.0
    min_rating: float = 4.0  # ratings at or above this count as positive

    def of(self, ev: FeedbackEvent) -> float | None:
        """Reward of one event, or None when the event says nothing (e.g. a low rating is a
        negative only when nothing else was positive)."""
        if ev.kind == "click":
            return self.click
        if ev.kind == "rating":
            return 1.0 if (ev.value or 0.0) >= self.min_rating else 0.0
        return 0.0  # skip


@dataclass(frozen=True)
class Round:
    impression: Impression
    rewards: tuple[float, ...]  # per shown slot, max over the item's events
    skipped: tuple[bool, ...]   # an explicit skip (or low rating) was logged for the slot


def rounds(store: FeedbackStore, *, reward: RewardSpec | None = None,
           policy: str | None = None, since: float | None = None,
           until: float | None = None) -> Iterator[Round]:
    """Impressions in time order with the rewards their events imply."""
    spec = reward or RewardSpec()
    by_request: dict[str, list[FeedbackEvent]] = defaultdict(list)
    for ev in store.events(since=since):
        if ev.request_id is not None:
            by_request[ev.request_id].append(ev)
    for imp in store.impressions(policy=policy, since=since, until=until):
        r = [0.0] * len(imp.items)
        skipped = [False] * len(imp.items)
        index = {item: slot for slot, item in enumerate(imp.items)}
        for ev in by_request.get(imp.request_id, ()):
            slot = index.get(ev.item_id)
            if slot is None:
                continue
            value = spec.of(ev)
            if value is None:
                continue
            if value <= 0.0:
                skipped[slot] = True
            r[slot] = max(r[slot], value)
        yield Round(imp, tuple(r), tuple(skipped))
