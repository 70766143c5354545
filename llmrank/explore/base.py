"""The exploration stage's records and interface.

A policy takes the reranked list ``[(item_id, score), ...]`` (best first) and a context, and
returns the shown Slate: k items plus, for each shown item, the probability that the policy puts
that item at that position (the per-position marginal). Those propensities are what off-policy
evaluation divides by, so every policy must be able to report them: exactly where that is
tractable (greedy, epsilon-greedy, Plackett-Luce softmax) and by Monte Carlo otherwise (the
sample count is in ``Slate.propensity_method``, e.g. ``"mc:1000"``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from llmrank.feedback.records import Impression

Ranked = Sequence[tuple[str, float]]


@dataclass
class ExploreContext:
    """What a policy may condition on. ``history`` is time-ordered item ids; ``segment`` picks
    per-segment posteriors (e.g. an age band or a user cluster); ``user_vector`` overrides the
    history-mean embedding that linear bandits use. ``admit`` decides which must-show items
    that are not among the candidates a policy may add (the request's own filters, say);
    None adds them all. It is the caller's rule, not a fact about the user, so it is not logged."""

    user_id: str | None = None
    history: Sequence[str] = ()
    segment: str | None = None
    request_id: str | None = None
    user_vector: np.ndarray | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    admit: Callable[[str], bool] | None = None

    def to_log(self) -> dict[str, Any]:
        """What an impression keeps of the context (segment, history ids, a given user vector):
        learning and off-policy evaluation rebuild the context from it later, and a linear
        bandit's user x item features are zero without the history."""
        out: dict[str, Any] = {"segment": self.segment, "history": [str(i) for i in self.history]}
        if self.user_vector is not None:
            out["user_vector"] = [float(x) for x in self.user_vector]
        return out

    @classmethod
    def from_log(cls, user_id: str | None, request_id: str | None,
                 logged: Mapping[str, Any]) -> ExploreContext:
        """The context a logged impression was selected in (``to_log``'s inverse); a log
        written before history was kept gives an empty history."""
        import numpy as np

        vector = logged.get("user_vector")
        return cls(user_id=user_id, history=[str(i) for i in logged.get("history") or ()],
                   segment=logged.get("segment"), request_id=request_id,
                   user_vector=None if vector is None else np.asarray(vector, dtype=np.float64))


@dataclass
class Slate:
    """The shown list. ``propensities[p]`` = P(policy shows ``items[p]`` at position p | context);
    None when the caller asked not to compute them. ``reasons[p]`` says why the slot holds its
    item: 'policy', 'pinned' (a must-show business rule) or 'cold-start' (the reserved slot)."""

    items: list[str]
    scores: list[float]
    propensities: list[float] | None
    policy: str
    candidates: list[str]
    candidate_scores: list[float]
    propensity_method: str = "exact"
    reasons: list[str] = field(default_factory=list)
    # the slate length asked for: hard caps may show fewer, and a policy's plan (where the
    # cold-start slot goes) depends on it, so OPE must ask the target for the same k
    k: int | None = None

    @property
    def positions(self) -> list[int]:
        return list(range(len(self.items)))

    def impression(self, request_id: str, user_id: str | None, *, timestamp: float | None = None,
                   context: Mapping[str, Any] | None = None) -> Impression:
        """The record the feedback store keeps for this slate."""
        from llmrank.errors import FeedbackError
        from llmrank.feedback.records import Impression

        if self.propensities is None:
            raise FeedbackError("slate was selected without propensities; cannot be logged for OPE")
        return Impression(
            request_id=request_id, user_id=user_id, items=tuple(self.items),
            scores=tuple(self.scores), propensities=tuple(self.propensities), policy=self.policy,
            timestamp=time.time() if timestamp is None else timestamp,
            candidates=tuple(self.candidates), candidate_scores=tuple(self.candidate_scores),
            propensity_method=self.propensity_method,
            context={**(context or {}), **({"k": self.k} if self.k is not None else {})},
        )


@runtime_checkable
class Policy(Protocol):
    """An exploration policy over a reranked list (see module docstring)."""

    name: str

    def select(self, ranked: Ranked, k: int, context: ExploreContext | None = None, *,
               propensities: bool = True) -> Slate:
        """Choose the shown slate; advances the policy's random state."""
        ...

    def marginals(self, ranked: Ranked, k: int,
                  context: ExploreContext | None = None) -> tuple[np.ndarray, str]:
        """(k, n) matrix: P(candidate j at position p) under the current state, and how it was
        computed ('exact', 'deterministic', 'mc:<samples>'). Does not change the policy."""
        ...

    def update(self, context: ExploreContext, slate: Slate, rewards: Sequence[float]) -> None:
        """Learn from the rewards of a shown slate (one per shown item, 0 when ignored)."""
        ...
