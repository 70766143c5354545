"""Typed feedback records: what was shown (Impression), what the user did (FeedbackEvent),
and what fine-tuning consumes (PreferencePair).

An impression carries everything off-policy evaluation needs later: the full candidate list
with its ranker scores, the shown slate, and the probability with which the logging policy put
each shown item at its position. Without the candidates a new policy cannot be evaluated on old
logs, which is why they are part of the record and not an optional extra."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmrank.errors import FeedbackError

EventKind = Literal["click", "rating", "skip"]
EVENT_KINDS: tuple[str, ...] = ("click", "rating", "skip")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Impression:
    """One shown slate. ``propensities[p]`` is P(logging policy puts ``items[p]`` at position p)
    given the context (the per-position marginal), 1.0 for deterministic policies."""

    request_id: str
    user_id: str | None
    items: tuple[str, ...]
    scores: tuple[float, ...]
    propensities: tuple[float, ...]
    policy: str
    timestamp: float = field(default_factory=time.time)
    positions: tuple[int, ...] = ()
    candidates: tuple[str, ...] = ()  # full candidate list the policy chose from (for OPE)
    candidate_scores: tuple[float, ...] = ()
    propensity_method: str = "exact"  # 'exact', 'deterministic', 'mc:<samples>'
    context: Mapping[str, Any] = field(default_factory=dict)  # segment, history ids (explore.base)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(str(i) for i in self.items))
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        object.__setattr__(self, "propensities", tuple(float(p) for p in self.propensities))
        if not self.positions:
            object.__setattr__(self, "positions", tuple(range(len(self.items))))
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        object.__setattr__(self, "candidates", tuple(str(c) for c in self.candidates))
        object.__setattr__(self, "candidate_scores", tuple(float(s) for s in self.candidate_scores))
        self.validate()

    def validate(self) -> None:
        """Raise FeedbackError when the record cannot be used for learning or evaluation."""
        if not self.request_id:
            raise FeedbackError("impression without request_id")
        n = len(self.items)
        if n == 0:
            raise FeedbackError(f"impression {self.request_id}: no items shown")
        for name in ("scores", "propensities", "positions"):
            if len(getattr(self, name)) != n:
                raise FeedbackError(
                    f"impression {self.request_id}: {name} has {len(getattr(self, name))} "
                    f"entries for {n} items"
                )
        if len(set(self.items)) != n:
            raise FeedbackError(f"impression {self.request_id}: an item is shown twice")
        for pos in self.positions:
            # a SQLite INTEGER (OverflowError otherwise); a negative one was always accepted and
            # may be in a store already, which must stay readable
            if not -(2**63) <= pos < 2**63:
                raise FeedbackError(f"impression {self.request_id}: position {pos} outside a 64-bit integer")
        for p in self.propensities:
            if not (0.0 < p <= 1.0 + 1e-9) or math.isnan(p):
                raise FeedbackError(
                    f"impression {self.request_id}: propensity {p} outside (0, 1]"
                )
        if not all(math.isfinite(x) for x in (*self.scores, *self.candidate_scores)):
            # a NaN cannot be stored as a score, and OPE standardises the candidate scores
            raise FeedbackError(f"impression {self.request_id}: a score is not finite")
        if self.candidate_scores and len(self.candidate_scores) != len(self.candidates):
            raise FeedbackError(f"impression {self.request_id}: candidate_scores/candidates differ in length")
        if self.candidates and not set(self.items) <= set(self.candidates):
            raise FeedbackError(f"impression {self.request_id}: a shown item is not a candidate")
        if not math.isfinite(self.timestamp):
            raise FeedbackError(f"impression {self.request_id}: timestamp is not finite")
        _check_text(f"impression {self.request_id!r}", self.request_id, self.user_id, self.policy,
                    self.propensity_method, *self.items, *self.candidates)

    def position_of(self, item_id: str) -> int | None:
        try:
            return self.positions[self.items.index(item_id)]
        except ValueError:
            return None


@dataclass(frozen=True)
class FeedbackEvent:
    """A click, rating or skip. ``request_id`` ties it to an impression (None for feedback on
    an item the user found elsewhere); ``event_id`` makes writes idempotent."""

    user_id: str | None
    item_id: str
    kind: str
    value: float | None = None
    request_id: str | None = None
    position: int | None = None
    timestamp: float = field(default_factory=time.time)
    event_id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        if self.kind == "click" and self.value is None:
            object.__setattr__(self, "value", 1.0)
        self.validate()

    def validate(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise FeedbackError(f"event kind must be one of {', '.join(EVENT_KINDS)}, got {self.kind!r}")
        if not self.item_id:
            raise FeedbackError("event without item_id")
        if not self.event_id:
            raise FeedbackError("event without event_id")
        if self.position is not None and not 0 <= self.position < 2**63:  # a SQLite INTEGER
            raise FeedbackError(f"event {self.event_id}: position {self.position} outside [0, 2**63)")
        if self.kind == "rating" and (self.value is None or not math.isfinite(self.value)):
            raise FeedbackError(f"rating event {self.event_id} needs a finite value")
        if self.value is not None and not math.isfinite(self.value):
            # NaN != NaN made the event's own retry a conflict, and JSON cannot hold either
            raise FeedbackError(f"event {self.event_id}: value {self.value} is not finite")
        if not math.isfinite(self.timestamp):
            raise FeedbackError(f"event {self.event_id}: timestamp is not finite")
        _check_text(f"event {self.event_id!r}", self.event_id, self.user_id, self.item_id, self.request_id)


@dataclass(frozen=True)
class PreferencePair:
    """One DPO example: in impression ``request_id`` the user preferred ``chosen`` over
    ``rejected``; ``history`` is what the user had engaged with before (None when unknown)."""

    user_id: str | None
    history: tuple[str, ...] | None
    chosen: str
    rejected: str
    request_id: str


def impression_to_dict(imp: Impression) -> dict[str, Any]:
    return {
        "type": "impression",
        "request_id": imp.request_id,
        "user_id": imp.user_id,
        "items": list(imp.items),
        "positions": list(imp.positions),
        "scores": list(imp.scores),
        "propensities": list(imp.propensities),
        "policy": imp.policy,
        "timestamp": imp.timestamp,
        "candidates": list(imp.candidates),
        "candidate_scores": list(imp.candidate_scores),
        "propensity_method": imp.propensity_method,
        "context": dict(imp.context),
    }


def event_to_dict(ev: FeedbackEvent) -> dict[str, Any]:
    return {
        "type": "event",
        "event_id": ev.event_id,
        "request_id": ev.request_id,
        "user_id": ev.user_id,
        "item_id": ev.item_id,
        "kind": ev.kind,
        "value": ev.value,
        "position": ev.position,
        "timestamp": ev.timestamp,
    }


_IMP_REQUIRED = ("request_id", "items", "scores", "propensities", "policy", "timestamp")
_EV_REQUIRED = ("event_id", "item_id", "kind", "timestamp")


def impression_from_dict(d: Mapping[str, Any]) -> Impression:
    """Inverse of impression_to_dict; raises FeedbackError on a missing or mistyped field."""
    _require(d, _IMP_REQUIRED, "impression")
    try:
        return Impression(
            request_id=str(d["request_id"]),
            user_id=None if d.get("user_id") is None else str(d["user_id"]),
            items=tuple(_seq(d["items"], "items")),
            scores=tuple(_seq(d["scores"], "scores")),
            propensities=tuple(_seq(d["propensities"], "propensities")),
            policy=str(d["policy"]),
            timestamp=float(d["timestamp"]),
            positions=tuple(_seq(d.get("positions") or (), "positions")),
            candidates=tuple(_seq(d.get("candidates") or (), "candidates")),
            candidate_scores=tuple(_seq(d.get("candidate_scores") or (), "candidate_scores")),
            # only a missing (or null) method is the default: "" is kept as written
            propensity_method="exact" if d.get("propensity_method") is None else str(d["propensity_method"]),
            context=dict(d.get("context") or {}),
        )
    except (TypeError, ValueError, OverflowError) as exc:  # Overflow: an integer beyond a double
        raise FeedbackError(f"bad impression field: {exc}") from exc


def event_from_dict(d: Mapping[str, Any]) -> FeedbackEvent:
    _require(d, _EV_REQUIRED, "event")
    try:
        return FeedbackEvent(
            user_id=None if d.get("user_id") is None else str(d["user_id"]),
            item_id=str(d["item_id"]),
            kind=str(d["kind"]),
            value=None if d.get("value") is None else float(d["value"]),
            request_id=None if d.get("request_id") is None else str(d["request_id"]),
            position=None if d.get("position") is None else int(d["position"]),
            timestamp=float(d["timestamp"]),
            event_id=str(d["event_id"]),
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise FeedbackError(f"bad event field: {exc}") from exc


def _check_text(what: str, *values: object) -> None:
    """Every id is stored and exported as UTF-8: a lone UTF-16 surrogate (half an emoji, which
    JSON can escape) cannot be, and failed in SQLite as a UnicodeEncodeError."""
    for v in values:
        if not isinstance(v, str):
            continue
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise FeedbackError(f"{what}: {v!r} is not valid UTF-8 text (a lone surrogate)") from None


def _require(d: Mapping[str, Any], keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise FeedbackError(f"{what} is missing {', '.join(missing)}")


def _seq(value: Any, name: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise FeedbackError(f"{name} must be a list")
    return list(value)
