"""Preference pairs for DPO fine-tuning (``llmrank finetune --dpo`` consumes them).

Within one impression, an item the user clicked (or rated highly) is *chosen* and an item that
was shown in the same slate but not acted on (or explicitly skipped) is *rejected*. Comparing
inside one slate keeps the context identical for both sides, which is what DPO assumes.

``negatives`` picks which non-clicked items count as rejected:
  * ``"shown"``: every shown item without a positive event (default; most pairs). This
    assumes the user saw the whole slate: an item shown below the lowest click may never
    have been looked at, and its pair is then noise; ``"above"`` leaves those out;
  * ``"above"``: only those shown above the lowest click, plus explicit skips (cascade
    assumption: the user looked at them and passed; fewer but cleaner pairs);
  * ``"skipped"``: only explicit skips and low ratings.

Whatever the mode, an item the same user clicked (or rated highly) anywhere else, in another
impression or outside any (an event without request_id), before or after, is never rejected:
the user likes it, and a pair saying otherwise would teach the opposite."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import IO, Literal

from llmrank.errors import FeedbackError
from llmrank.feedback.base import FeedbackStore
from llmrank.feedback.records import FeedbackEvent, PreferencePair
from llmrank.feedback.rounds import RewardSpec, rounds

HistoryFn = Callable[[str | None, float], list[str]]


def _positive_events(store: FeedbackStore, spec: RewardSpec) -> dict[str, list[FeedbackEvent]]:
    """Per user, every event with a positive reward: one pass over the store's events, which
    the pairs' 'liked' items and the store history both read. An event without user_id that
    answers an impression (POST /feedback takes user_id as optional) is the impression's
    user's: rounds() counts it for that user's slate, so it is that user's liked item too."""
    per_user: dict[str, list[FeedbackEvent]] = defaultdict(list)
    anonymous: list[tuple[str, FeedbackEvent]] = []
    for ev in store.events():
        if (spec.of(ev) or 0.0) <= 0.0:
            continue
        if ev.user_id is not None:
            per_user[ev.user_id].append(ev)
        elif ev.request_id is not None:
            anonymous.append((ev.request_id, ev))
    owners: dict[str, str | None] = {}
    for rid, ev in anonymous:
        if rid not in owners:
            imp = store.impression(rid)
            owners[rid] = None if imp is None else imp.user_id
        owner = owners[rid]
        if owner is not None:
            per_user[owner].append(ev)
    return per_user


def store_history(store: FeedbackStore, reward: RewardSpec | None = None) -> HistoryFn:
    """History from the store itself: the items of the user's positive events before a time,
    oldest first, each once at its latest engagement (a click then a rating of one item must
    not take two of the prompt's history slots)."""
    return _history_of(_positive_events(store, reward or RewardSpec()))


def _history_of(positives: dict[str, list[FeedbackEvent]]) -> HistoryFn:
    """``store_history`` over already collected positive events (skips are never history)."""
    per_user = {u: sorted((ev.timestamp, ev.item_id) for ev in evs if ev.kind != "skip")
                for u, evs in positives.items()}
    times = {u: [t for t, _ in evs] for u, evs in per_user.items()}

    def history(user_id: str | None, before: float) -> list[str]:
        if user_id is None or user_id not in per_user:
            return []
        cut = bisect.bisect_left(times[user_id], before)
        latest_first = dict.fromkeys(item for _, item in reversed(per_user[user_id][:cut]))
        return list(latest_first)[::-1]

    return history


def preference_pairs(
    store: FeedbackStore,
    *,
    negatives: Literal["shown", "above", "skipped"] = "shown",
    reward: RewardSpec | None = None,
    history: HistoryFn | Literal["store"] | None = "store",
    max_history: int = 20,
    max_pairs_per_impression: int | None = None,
    policy: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[PreferencePair]:
    """All (chosen, rejected) pairs in the store's impressions, in time order."""
    if negatives not in ("shown", "above", "skipped"):
        raise FeedbackError(f"negatives must be shown, above or skipped, got {negatives!r}")
    if max_pairs_per_impression is not None and max_pairs_per_impression < 0:
        raise FeedbackError(f"max_pairs_per_impression must be >= 0 (None: no limit), got {max_pairs_per_impression}")
    positives = _positive_events(store, reward or RewardSpec())
    liked = {u: {ev.item_id for ev in evs} for u, evs in positives.items()}  # every liked item
    hist_fn = _history_of(positives) if history == "store" else history
    out: list[PreferencePair] = []
    for rnd in rounds(store, reward=reward, policy=policy, since=since, until=until):
        imp = rnd.impression
        pos_slots = [s for s, r in enumerate(rnd.rewards) if r > 0.0]
        if not pos_slots:
            continue
        neg_slots = _negatives(rnd.rewards, rnd.skipped, imp.positions, pos_slots, negatives)
        if imp.user_id is not None:
            neg_slots = [s for s in neg_slots if imp.items[s] not in liked.get(imp.user_id, ())]
        if not neg_slots:
            continue
        hist: tuple[str, ...] | None = None
        if hist_fn is not None:
            full = [i for i in hist_fn(imp.user_id, imp.timestamp) if i not in imp.items]
            hist = tuple(full[-max_history:]) if max_history > 0 else ()
        pairs = [PreferencePair(imp.user_id, hist, imp.items[p], imp.items[n], imp.request_id)
                 for p in pos_slots for n in neg_slots]
        out.extend(pairs if max_pairs_per_impression is None else pairs[:max_pairs_per_impression])
    return out


def _negatives(rewards: tuple[float, ...], skipped: tuple[bool, ...], positions: tuple[int, ...],
               pos_slots: list[int], mode: str) -> list[int]:
    candidates = [s for s, r in enumerate(rewards) if r <= 0.0]
    if mode == "shown":
        return candidates
    if mode == "skipped":
        return [s for s in candidates if skipped[s]]
    lowest_click = max(positions[s] for s in pos_slots)
    return [s for s in candidates if skipped[s] or positions[s] < lowest_click]


def pairs_to_dicts(pairs: Iterable[PreferencePair]) -> list[dict[str, object]]:
    return [{"user_id": p.user_id, "history": None if p.history is None else list(p.history),
             "chosen": p.chosen, "rejected": p.rejected, "request_id": p.request_id}
            for p in pairs]


def write_pairs_jsonl(pairs: Iterable[PreferencePair], out: IO[str]) -> int:
    from llmrank.feedback.jsonl import write_jsonl

    return write_jsonl(pairs_to_dicts(pairs), out)
