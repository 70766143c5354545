"""Join impressions with their events into rounds: (impression, reward of each shown slot).

This is the view that learning and off-policy evaluation need. How events become a reward is
one small function (``RewardSpec``): a click is 1, a rating is 1 when it reaches a threshold,
a skip is 0; an item shown and not acted on is 0."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from llmrank.feedback.base import FeedbackStore
from llmrank.feedback.records import FeedbackEvent, Impression


@dataclass(frozen=True)
class RewardSpec:
    """Which events count as a positive outcome for a shown item."""

    click: float = 1.0
    min_rating: float = 4.0  # ratings at or above this count as positive

    def of(self, ev: FeedbackEvent) -> float | None:
        """Reward of one event: ``click`` for a click, 1 or 0 for a rating (at or above
        ``min_rating`` or not), 0 for a skip. A 0 does not undo a positive event of the same
        slot: a slot's reward is the max over its events. (A subclass may return None for an
        event that says nothing; the built-in kinds always say something.)"""
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
    """Impressions in time order (``since`` <= timestamp < ``until``) with the rewards their
    events imply. An impression's events are found by its request_id, whatever their own
    timestamps say: a click stamped by a client whose clock runs behind the server's still
    belongs to the impression it answers."""
    spec = reward or RewardSpec()
    # the impressions are read before their events: an impression written meanwhile is then
    # either left out or joined with every event committed before it (never reward 0 for a
    # slate whose click was committed before the impression was read)
    impressions = store.impressions(policy=policy, since=since, until=until)
    if since is None:  # the whole log from the start: one pass over every event is cheaper
        impressions = iter(list(impressions))
        by_request: dict[str, list[FeedbackEvent]] = defaultdict(list)
        for ev in store.events():
            if ev.request_id is not None:
                by_request[ev.request_id].append(ev)
        for imp in impressions:
            yield _round(imp, by_request.get(imp.request_id, ()), spec)
        return
    for imp in impressions:  # a window: look each impression's events up (indexed by request)
        yield _round(imp, list(store.events(request_id=imp.request_id)), spec)


def _round(imp: Impression, events: Iterable[FeedbackEvent], spec: RewardSpec) -> Round:
    """One impression's rewards per shown slot (max over the slot's events)."""
    r = [0.0] * len(imp.items)
    skipped = [False] * len(imp.items)
    index = {item: slot for slot, item in enumerate(imp.items)}
    for ev in events:
        slot = index.get(ev.item_id)
        if slot is None:
            continue
        value = spec.of(ev)
        if value is None:
            continue
        if value <= 0.0:
            skipped[slot] = True
        r[slot] = max(r[slot], value)
    return Round(imp, tuple(r), tuple(skipped))
