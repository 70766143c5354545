"""The explore stage as the Recommender uses it: a policy plus the feedback store.

    step = ExploreStep.from_config(config, features=item_features)   # once
    shown = step(request, reranked_items, history)                    # per request, after rerank
    step.feedback(FeedbackEvent(...))                                 # Recommender.feedback
    step.learn()                                                      # fold settled feedback in

``__call__`` returns the shown RankedItems (positions and propensities set) and logs the
impression (with the candidate list, for off-policy evaluation) before returning, so every
shown slate is on record. Feedback arrives later and one item at a time, so policies learn from
*settled* impressions: ``learn()`` takes the impressions older than ``settle_seconds`` that it
has not seen yet, joins their events (clicked = 1, shown without a click = 0) and calls
``policy.update``. The step calls ``learn()`` itself before a request at most every
``learn_every_seconds`` (default 60; 0 = before every request, negative = only when the caller
calls it), so a server keeps learning without a separate job. A request with ``explore=False``
is served greedily (propensity 1; the policy's business rules and objectives still apply) and
logged as policy 'greedy'.

Retries: ``request_id`` is an idempotency key. A request whose id is already on record for the
same user gets the logged slate back (same items, positions and propensities; the policy does
not draw again), so a client that lost a response can ask again under an exploring policy
(a fresh draw was a different slate, refused by the store as a conflict). The same id from
another user is a FeedbackConflictError.

Prior source: the policy's prior score of a candidate is the reranker's score, or, with
``prior_scores`` (``[policy] prior = "familiarity"``), the LLM's familiarity with the item's
title; an item without one gets the lowest known score. The shown items keep their reranker
scores; only what the policy starts from changes.

Per-segment posteriors: ``segment_key`` names a user attribute (e.g. ``age_band``); with
``users`` (the dataset's users) the step looks the request's user up and passes the value as
the segment, and logs it with the impression so ``learn()`` updates the same segment.

Context on record: the impression keeps the context the policy selected in (segment and the
user's ``history_items`` most recent history ids, default 200; the policy sees exactly those),
so ``learn()`` and off-policy evaluation rebuild it: a linear bandit's user x item features
come from the history, and without it they would be zero."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from llmrank.errors import LlmrankError
from llmrank.explore.base import ExploreContext, Policy, Slate
from llmrank.explore.features import ItemFeatures
from llmrank.feedback.base import FeedbackStore
from llmrank.feedback.records import FeedbackEvent, Impression
from llmrank.records import RankedItem, RecRequest, User

log = logging.getLogger(__name__)


class ExploreStep:
    def __init__(self, policy: Policy, store: FeedbackStore | None = None, *,
                 settle_seconds: float = 3600.0, learn_every_seconds: float = 60.0,
                 segment_key: str | None = None, features: ItemFeatures | None = None,
                 users: Mapping[str, User] | None = None,
                 prior_scores: Mapping[str, float] | None = None,
                 history_items: int = 200) -> None:
        from llmrank.explore import make_policy

        if history_items < 0:
            from llmrank.errors import ConfigError

            raise ConfigError(f"history_items must be >= 0, got {history_items}")
        self.history_items = history_items
        self.policy = policy
        # a request served greedily turns exploration off, not the business rules and the
        # multi-objective step: the greedy fallback shares the policy's objectives
        objectives = getattr(getattr(policy, "config", None), "objectives", None)
        self.greedy = make_policy("greedy", None if objectives is None else {"objectives": objectives},
                                  features=features)
        self.store = store
        self.settle_seconds = settle_seconds
        self.learn_every_seconds = learn_every_seconds
        self._learned_at = float("-inf")
        self._learning = threading.Lock()  # concurrent requests: one of them learns, none waits
        self._window = threading.Lock()  # learn() calls in turn: each impression folded in once
        # a policy's state (posteriors, its random generator) is not thread-safe: select and
        # update take turns. Held per call, not per learn(): a request waits one update at most
        self._policy_lock = threading.RLock()
        # an impression is stamped and written under this lock, and learn() fixes its window
        # under it: an impression stamped before the window's end but written after it (a
        # slow or locked store) was skipped by that learn() and, being older, by every later one
        self._logging = threading.Lock()
        self.segment_key = segment_key
        self.users = users
        if segment_key is not None and users is None:
            log.warning("segment_key %r is set but the explore step was given no users: "
                        "requests get no segment unless the caller passes one", segment_key)
        self.learned_until: float | None = None
        self.prior_scores = prior_scores
        self._prior_floor = min(prior_scores.values()) if prior_scores else 0.0

    @classmethod
    def from_config(cls, config: Any, *, features: ItemFeatures | None = None,
                    store: FeedbackStore | None = None, open_feedback: bool = True,
                    users: Mapping[str, User] | None = None,
                    prior_scores: Mapping[str, float] | None = None) -> ExploreStep:
        """From a llmrank Config: ``[policy] name/options`` (seeded by ``config.seed``) and the
        ``[feedback]`` store. Options ``settle_seconds``, ``learn_every_seconds``,
        ``segment_key`` (a user attribute) and ``history_items`` belong to the step, everything
        else to the policy."""
        from llmrank.explore import make_policy
        from llmrank.feedback import open_store

        options = dict(config.policy.options)
        settle = float(options.pop("settle_seconds", 3600.0))
        learn_every = float(options.pop("learn_every_seconds", 60.0))
        segment_key = options.pop("segment_key", None)
        history_items = int(options.pop("history_items", 200))
        options.setdefault("seed", config.seed)
        policy = make_policy(config.policy.name, options, features=features)
        if store is None and open_feedback:
            store = open_store(config.feedback)
        if config.policy.prior == "familiarity" and prior_scores is None:
            from llmrank.errors import ConfigError

            raise ConfigError('[policy] prior = "familiarity" needs the catalog\'s familiarity scores '
                              "(Recommender.from_config computes them with the reranker's model)")
        return cls(policy, store, settle_seconds=settle, learn_every_seconds=learn_every,
                   segment_key=segment_key, features=features, users=users, prior_scores=prior_scores,
                   history_items=history_items)

    def segment_of(self, user_id: str | None) -> str | None:
        """The request's segment: the user's ``segment_key`` attribute, or None."""
        if self.segment_key is None or self.users is None or user_id is None:
            return None
        user = self.users.get(user_id)
        value = user.attributes.get(self.segment_key) if user is not None else None
        return None if value is None else str(value)

    def __call__(self, request: RecRequest, ranked: Sequence[RankedItem], history: Sequence[str] = (),
                 *, segment: str | None = None, log: bool = True,
                 admit: Callable[[str], bool] | None = None) -> list[RankedItem]:
        """The shown items, logged as shown. ``admit`` says which must-show items that are not
        in ``ranked`` may be added (the Recommender passes the request's filters): the slate
        is final here, so what is logged is what the caller returns."""
        if log and self.store is not None:
            logged = self.store.impression(request.request_id)
            if logged is not None:
                return self._replay(logged, request, ranked)
        self._learn_if_due()
        explores = request.explore is not False  # None: the configured policy decides
        policy = self.policy if explores else self.greedy
        if segment is None:
            segment = self.segment_of(request.user_id)
        recent = list(history)[-self.history_items:] if self.history_items else []
        ctx = ExploreContext(user_id=request.user_id, history=recent, segment=segment,
                             request_id=request.request_id, admit=admit)
        with self._policy_lock:
            slate = policy.select([(it.item_id, self._prior(it, explores)) for it in ranked],
                                  request.k, ctx)
        shown = _as_shown(ranked, slate.items, slate.scores, slate.propensities or [])
        if log and self.store is not None and slate.items:  # nothing shown: nothing to learn from
            with self._logging:
                self.store.log_impression(slate.impression(request.request_id, request.user_id,
                                                           context=ctx.to_log()))
        return shown

    def _replay(self, logged: Impression, request: RecRequest, ranked: Sequence[RankedItem]) -> list[RankedItem]:
        """The slate on record for a retried request (module docstring: Retries)."""
        from llmrank.errors import FeedbackConflictError

        if logged.user_id != request.user_id:
            raise FeedbackConflictError(f"request_id {request.request_id!r} is already used by another "
                                        "request; give each request its own id")
        log.info("request %s is a retry: the logged slate is served again", request.request_id)
        return _as_shown(ranked, logged.items, logged.scores, logged.propensities)

    def _prior(self, item: RankedItem, exploring: bool) -> float:
        """The policy's prior score (a request served greedily keeps the reranker's order)."""
        if self.prior_scores is None or not exploring:
            return float(item.score)
        return float(self.prior_scores.get(item.item_id, self._prior_floor))

    def feedback(self, event: FeedbackEvent) -> str:
        """Store one event (returns after it is durable: the acknowledgement). An event tied
        to a request must match what that request showed: learning, OPE and DPO pairs read
        it as feedback on that slate."""
        from llmrank.errors import FeedbackError

        if self.store is None:
            raise FeedbackError("no feedback store configured")
        if event.request_id is not None:
            imp = self.store.impression(event.request_id)
            if imp is None:
                raise FeedbackError(f"unknown request_id {event.request_id!r}: no impression was "
                                    "logged under it (leave request_id out for feedback on an "
                                    "item found elsewhere)")
            if event.item_id not in imp.items:
                raise FeedbackError(f"item {event.item_id!r} was not shown in request {event.request_id!r}")
            if imp.user_id is not None and event.user_id is not None and event.user_id != imp.user_id:
                raise FeedbackError(f"request {event.request_id!r} was served to another user")
        return self.store.log_event(event)

    def _learn_if_due(self) -> None:
        """``learn()`` when ``learn_every_seconds`` have passed since the last time. A failing
        store is logged, not raised: the request is served by the policy as it is."""
        if self.store is None or self.learn_every_seconds < 0:
            return
        now = time.time()
        if now - self._learned_at < self.learn_every_seconds or not self._learning.acquire(blocking=False):
            return
        try:
            self._learned_at = now
            n = self.learn(now=now)
            if n:
                log.info("explore: learnt from %d settled impressions", n)
        except LlmrankError as exc:
            log.warning("explore: learning from feedback failed, serving the current policy: %s", exc)
        finally:
            self._learning.release()

    def learn(self, *, now: float | None = None) -> int:
        """Update the policy from impressions settled since the last call; returns how many.
        The learned window only moves forward: a ``now`` before an earlier call's (a clock
        stepped back, a caller's own time) learns nothing, else its impressions would count twice.
        Calls from several threads (Recommender.learn beside the step's own periodic learning)
        run one after another: both read the same window and counted every click twice. An
        impression the policy cannot learn from is skipped with a warning (an exception left
        the window behind, so the next call learned the ones before it again)."""
        if self.store is None:
            return 0
        from llmrank.feedback.rounds import rounds

        with self._window:
            with self._logging:  # every impression stamped before ``until`` is in the store
                until = (time.time() if now is None else now) - self.settle_seconds
            if self.learned_until is not None and until <= self.learned_until:
                return 0
            n = 0
            for rnd in rounds(self.store, since=self.learned_until, until=until):
                imp = rnd.impression  # any policy's slate is evidence about the items it showed
                try:
                    with self._policy_lock:
                        self.policy.update(context_of(imp), slate_of(imp), list(rnd.rewards))
                except Exception as exc:  # one bad impression must not block (or repeat) the rest
                    log.warning("explore: impression %s not learned (%s: %s)", imp.request_id,
                                type(exc).__name__, exc)
                    continue
                n += 1
            self.learned_until = until
            return n


def _as_shown(ranked: Sequence[RankedItem], items: Sequence[str], scores: Sequence[float],
              propensities: Sequence[float]) -> list[RankedItem]:
    """The shown items at their positions with their propensities, keeping the reranker's
    fields; an item not in ``ranked`` (an added must-show one) gets the slate's score for it."""
    by_id = {it.item_id: it for it in ranked}
    return [replace(by_id.get(item_id) or RankedItem(item_id=item_id, score=score, position=pos),
                    position=pos, propensity=prop)
            for pos, (item_id, score, prop) in enumerate(zip(items, scores, propensities, strict=True))]


def slate_of(imp: Impression) -> Slate:
    """The Slate a logged impression records (the candidates default to the shown items)."""
    cands = list(imp.candidates) or list(imp.items)
    scores = list(imp.candidate_scores) or ([*imp.scores] if not imp.candidates else [0.0] * len(cands))
    return Slate(items=list(imp.items), scores=list(imp.scores), propensities=list(imp.propensities),
                 policy=imp.policy, candidates=cands, candidate_scores=scores,
                 propensity_method=imp.propensity_method)


def context_of(imp: Impression) -> ExploreContext:
    """The context the logged slate was selected in (segment, history), for ``update``."""
    return ExploreContext.from_log(imp.user_id, imp.request_id, imp.context)
