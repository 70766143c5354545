"""What every policy shares: config parsing, business rules and the cold-start slot, slate
assembly through the multi-objective step, and propensities (exact, deterministic or Monte
Carlo). A concrete policy only says how to draw index values and, when it can, its exact
marginals for plain top-k; see llmrank/explore/objectives.py for why that suffices."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from llmrank.config import reject_unknown_fields
from llmrank.errors import ConfigError
from llmrank.explore.base import ExploreContext, Ranked, Slate
from llmrank.explore.coldstart import ColdStartBudget, ColdStartConfig
from llmrank.explore.features import ItemFeatures
from llmrank.explore.objectives import (
    AssemblyInputs,
    ObjectivesConfig,
    assemble,
    check_must,
    eligible_mask,
)
from llmrank.rerank.blend import zscore

log = logging.getLogger(__name__)

C = TypeVar("C", bound="BaseConfig")


@dataclass
class BaseConfig:
    seed: int = 0
    mc_samples: int = 1000  # Monte Carlo draws for propensities that have no closed form
    cold_start: ColdStartConfig = field(default_factory=ColdStartConfig)
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)


def build_config(cls: type[C], options: Mapping[str, Any] | None) -> C:
    """A policy config from a plain dict (the ``[policy.options]`` table); unknown keys raise
    ConfigError with the valid ones."""
    opts = dict(options or {})
    reject_unknown_fields(cls, opts, f"option(s) for {cls.__name__}")
    try:
        if isinstance(opts.get("cold_start"), Mapping):
            opts["cold_start"] = ColdStartConfig(**opts["cold_start"])
        if isinstance(opts.get("objectives"), Mapping):
            opts["objectives"] = ObjectivesConfig(**opts["objectives"])
        return cls(**opts)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from exc


@dataclass
class Request:
    """One call's candidates as arrays. ``rank[j]`` is j's 0-based rank by ranker score and
    ``z[j]`` its standardised score within the list."""

    items: list[str]
    scores: np.ndarray
    codes: np.ndarray
    context: ExploreContext
    rank: np.ndarray
    z: np.ndarray

    @classmethod
    def make(cls, ranked: Ranked, context: ExploreContext, features: ItemFeatures | None,
             must: Sequence[str] = ()) -> Request:
        items = [str(i) for i, _ in ranked]
        scores = [float(s) for _, s in ranked]
        if len(set(items)) != len(items):
            raise ValueError("the ranked list holds an item twice")
        low = min(scores) if scores else 0.0
        admit = context.admit
        for m in must:  # a must-show item that retrieval did not return is still shown...
            if m not in items and (admit is None or admit(m)):  # ...unless the caller rules it out
                items.append(m)
                scores.append(low)
        s = np.asarray(scores, dtype=np.float64)
        codes = features.codes(items) if features is not None else np.full(len(items), -1)
        rank = np.empty(len(s), np.int64)
        rank[np.argsort(-s, kind="stable")] = np.arange(len(s))
        return cls(items, s, codes, context, rank, zscore(s))


@dataclass
class Plan:
    pinned: list[int]
    eligible: np.ndarray  # candidates the policy itself may place
    k_policy: int
    cold: np.ndarray | None  # candidate indices for the reserved slot, when it fires
    cold_slot: int
    inputs: AssemblyInputs

    @property
    def k_total(self) -> int:
        return len(self.pinned) + self.k_policy + (1 if self.cold is not None else 0)


class BasePolicy:
    """Subclasses set ``name``, ``config_cls`` and implement ``_values`` (and optionally
    ``_prepare``, ``_exact``, ``_learn``)."""

    name: ClassVar[str] = "base"
    config_cls: ClassVar[type[BaseConfig]] = BaseConfig
    deterministic: ClassVar[bool] = False  # values do not depend on the random state

    def __init__(self, config: BaseConfig | None = None, *, features: ItemFeatures | None = None,
                 **options: Any) -> None:
        if config is not None and options:
            raise ConfigError("pass either a config or options, not both")
        self.config = config if config is not None else build_config(self.config_cls, options)
        if self.config.mc_samples < 1:
            raise ConfigError(f"mc_samples must be >= 1, got {self.config.mc_samples}")
        check_must(self.config.objectives, features)
        self.features = features
        seed = self.config.seed
        self._rng = np.random.default_rng([seed, 0])
        self._mc_rng = np.random.default_rng([seed, 1])
        self.budget = ColdStartBudget(self.config.cold_start)

    # ---- hooks -------------------------------------------------------------------------------
    def _prepare(self, req: Request) -> Any:
        return None

    def _values(self, req: Request, state: Any, rng: np.random.Generator, m: int) -> np.ndarray:
        raise NotImplementedError

    def _exact(self, req: Request, state: Any, eligible: np.ndarray, k: int) -> np.ndarray | None:
        """(k, n) marginals of plain top-k over the eligible candidates, or None (use MC)."""
        return None

    def _learn(self, req: Request, slate: Slate, rewards: np.ndarray) -> None:
        return None

    # ---- the Policy interface --------------------------------------------------------------
    def select(self, ranked: Ranked, k: int, context: ExploreContext | None = None, *,
               propensities: bool = True) -> Slate:
        req = Request.make(ranked, context or ExploreContext(), self.features,
                           self.config.objectives.must)
        state = self._prepare(req)
        plan = self._plan(req, k)
        capped = plan.cold is not None and bool(plan.inputs.caps)
        cold_pick = None if capped else self._pick_cold(req, plan, self._rng)
        values = self._values(req, state, self._rng, 1)
        picks = assemble(values, plan.eligible, plan.k_policy, self.config.objectives, plan.inputs,
                         placed=plan.pinned)[0]
        picks = picks[picks >= 0]
        if capped:  # the cold item must keep the caps next to what the policy placed
            cold_pick = self._pick_cold(req, plan, self._rng, self._cold_open(plan, picks[None])[0])
        order, reasons = self._compose(plan, picks, cold_pick)
        props: list[float] | None = None
        method = "none"
        if propensities:
            mat, method = self._marginal_matrix(req, state, plan, picks)
            props = [float(mat[p, j]) for p, j in enumerate(order)]
        self.budget.record([req.items[j] for j in order], cold_pick is not None)
        return Slate(
            items=[req.items[j] for j in order], scores=[float(req.scores[j]) for j in order],
            propensities=props, policy=self.name, candidates=list(req.items),
            candidate_scores=[float(s) for s in req.scores], propensity_method=method,
            reasons=reasons, k=k,
        )

    def marginals(self, ranked: Ranked, k: int,
                  context: ExploreContext | None = None) -> tuple[np.ndarray, str]:
        req = Request.make(ranked, context or ExploreContext(), self.features,
                           self.config.objectives.must)
        state = self._prepare(req)
        plan = self._plan(req, k)
        return self._marginal_matrix(req, state, plan, None)

    def update(self, context: ExploreContext, slate: Slate, rewards: Sequence[float]) -> None:
        if len(rewards) != len(slate.items):
            raise ValueError(f"{len(rewards)} rewards for {len(slate.items)} shown items")
        ranked = list(zip(slate.candidates, slate.candidate_scores, strict=True))
        req = Request.make(ranked, context, self.features)
        self._learn(req, slate, np.asarray(rewards, dtype=np.float64))

    # ---- internals ---------------------------------------------------------------------------
    def _plan(self, req: Request, k: int) -> Plan:
        obj = self.config.objectives
        rules = eligible_mask(obj, self.features, req.items, req.codes)
        index = {item: j for j, item in enumerate(req.items)}
        pinned = [index[m] for m in obj.must if m in index][: max(k, 0)]  # admitted ones
        free = rules.copy()
        free[pinned] = False
        room = max(0, k - len(pinned))
        cold = None
        cold_mask = self.budget.cold_mask(req.items) & free
        # fire only while enough warm items remain for the other slots: keeping cold items out
        # of them is what keeps every slot's propensity exact (when all is new, explore freely)
        enough_warm = int((free & ~cold_mask).sum()) >= room - 1
        if room > 0 and enough_warm and self.budget.fires(int(cold_mask.sum())):
            cold = np.flatnonzero(cold_mask)
            free &= ~cold_mask
            room -= 1
        k_policy = min(room, int(free.sum()))
        k_total = len(pinned) + k_policy + (1 if cold is not None else 0)
        slot = self.config.cold_start.slot
        cold_slot = slot if slot >= 0 else k_total + slot
        cold_slot = min(max(cold_slot, len(pinned)), k_total - 1)
        inputs = AssemblyInputs.build(obj, self.features, req.codes, req.context.history)
        return Plan(pinned, free, k_policy, cold, cold_slot, inputs)

    def _pick_cold(self, req: Request, plan: Plan, rng: np.random.Generator,
                   open_: np.ndarray | None = None) -> int | None:
        """The cold item for the reserved slot, among the cold candidates ``open_`` marks
        (all of them when None); None when there is none to pick."""
        if plan.cold is None:
            return None
        cold = plan.cold if open_ is None else plan.cold[open_]
        if not len(cold):
            return None
        if self.config.cold_start.pick == "best":
            return int(cold[np.argmax(req.scores[cold])])
        return int(rng.choice(cold))

    def _cold_open(self, plan: Plan, draws: np.ndarray) -> np.ndarray:
        """(m, #cold) True where a cold candidate keeps every ``max_per`` cap next to the
        pinned items and a draw's policy picks (``draws`` (m, k'), -1 = empty slot)."""
        assert plan.cold is not None
        out = np.ones((len(draws), len(plan.cold)), dtype=bool)
        for a, limit in plan.inputs.caps:
            counts = a[plan.pinned].sum(0)[None, :] + (a[np.maximum(draws, 0)]
                                                       * (draws >= 0)[..., None]).sum(1)
            out &= ((counts >= limit).astype(np.float64) @ a[plan.cold].T) == 0
        return out

    def _cold_probs(self, req: Request, plan: Plan, open_: np.ndarray) -> np.ndarray:
        """(m, #cold) probability of each cold candidate in the reserved slot, per draw."""
        assert plan.cold is not None
        if self.config.cold_start.pick == "best":
            masked = np.where(open_, req.scores[plan.cold][None, :], -np.inf)
            out = np.zeros(open_.shape)
            out[np.arange(len(open_)), np.argmax(masked, axis=1)] = 1.0
            return out * open_.any(1, keepdims=True)
        n_open = open_.sum(1, keepdims=True)
        return np.asarray(open_ / np.maximum(n_open, 1))

    def _compose(self, plan: Plan, picks: np.ndarray,
                 cold_pick: int | None) -> tuple[list[int], list[str]]:
        """Shown order and the reason of each slot. Slot p's propensity is row p of the
        marginal matrix: when caps cut the slate short the cold item moves up to just below
        the policy's picks, and when they leave the reserved slot empty the picks below it
        move up (``_capped_cold_marginals`` counts them where they are shown)."""
        order = list(plan.pinned)
        reasons = ["pinned"] * len(order)
        for j in picks.tolist():
            if cold_pick is not None and len(order) == plan.cold_slot:
                order.append(cold_pick)
                reasons.append("cold-start")
            order.append(int(j))
            reasons.append("policy")
        if cold_pick is not None and cold_pick not in order:
            order.append(cold_pick)
            reasons.append("cold-start")
        return order, reasons

    def _policy_rows(self, req: Request, state: Any, plan: Plan,
                     actual: np.ndarray | None) -> tuple[np.ndarray, str, np.ndarray | None]:
        """(k_policy, n) marginals of the policy-filled positions, and the slates (m, k_policy)
        they were counted from (None when exact): the reserved cold slot's marginals under
        caps average over them."""
        n, k = len(req.items), plan.k_policy
        obj = self.config.objectives
        if k == 0:
            return np.zeros((0, n)), "exact", np.zeros((1, 0), np.int64)
        if self.deterministic:
            picks = actual if actual is not None else assemble(
                self._values(req, state, self._rng, 1), plan.eligible, k, obj, plan.inputs,
                placed=plan.pinned)[0]
            picks = picks[picks >= 0]
            out = np.zeros((k, n))
            out[np.arange(len(picks)), picks] = 1.0
            return out, "deterministic", _padded(picks, k)[None]
        if not obj.reorders:
            exact = self._exact(req, state, plan.eligible, k)
            if exact is not None:
                return exact, "exact", None
        m = self.config.mc_samples
        # marginals() (OPE's target, once per logged round) seeds by the request: the same
        # request is answered the same, and different requests' Monte Carlo errors average out
        rng = self._mc_rng if actual is not None else np.random.default_rng(
            [self.config.seed, 2, *_request_key(req)])
        draws = assemble(self._values(req, state, rng, m), plan.eligible, k, obj, plan.inputs,
                         placed=plan.pinned)
        counts = np.zeros((k, n))
        for p in range(k):
            col = draws[:, p]
            counts[p] = np.bincount(col[col >= 0], minlength=n)
        if actual is None:
            return counts / m, f"mc:{m}", draws
        # the shown draw is one more sample of the same distribution: count it, so that a shown
        # item never gets propensity 0
        counts[np.arange(len(actual)), actual] += 1.0
        return counts / (m + 1), f"mc:{m}", np.vstack([draws, _padded(actual, k)[None]])

    def _marginal_matrix(self, req: Request, state: Any, plan: Plan,
                         actual: np.ndarray | None) -> tuple[np.ndarray, str]:
        n = len(req.items)
        rows, method, draws = self._policy_rows(req, state, plan, actual)
        if plan.cold is not None and plan.inputs.caps and draws is not None:
            return self._capped_cold_marginals(req, plan, draws), method
        out = np.zeros((plan.k_total, n))
        r = 0
        for p in range(plan.k_total):
            if p < len(plan.pinned):
                out[p, plan.pinned[p]] = 1.0
            elif plan.cold is not None and p == plan.cold_slot:
                if self.config.cold_start.pick == "best":
                    out[p, int(plan.cold[np.argmax(req.scores[plan.cold])])] = 1.0
                else:
                    out[p, plan.cold] = 1.0 / len(plan.cold)
            else:
                out[p] = rows[r]
                r += 1
        return out, method


    def _capped_cold_marginals(self, req: Request, plan: Plan, draws: np.ndarray) -> np.ndarray:
        """(k_total, n) marginals over shown positions when the reserved cold slot meets
        ``max_per`` caps, averaged over the policy's slates ``draws`` (m, k_policy; -1 = empty).
        Caps can cut a slate short (the cold item then moves up to just below the policy's
        picks) or leave no cold candidate open (the slot stays empty and the picks below it
        move up), so the planned rows are not the shown positions: each draw is composed as
        ``_compose`` shows it."""
        assert plan.cold is not None
        n_pin = len(plan.pinned)
        out = np.zeros((plan.k_total, len(req.items)))
        for p, j in enumerate(plan.pinned):
            out[p, j] = float(len(draws))
        open_ = self._cold_open(plan, draws)
        probs = self._cold_probs(req, plan, open_)  # (m, #cold)
        has_cold = open_.any(1)
        for i in range(draws.shape[1]):
            placed = draws[:, i] >= 0
            pos = np.where(has_cold & (n_pin + i >= plan.cold_slot), n_pin + i + 1, n_pin + i)
            np.add.at(out, (pos[placed], draws[placed, i]), 1.0)
        cold_pos = np.minimum(plan.cold_slot, n_pin + (draws >= 0).sum(1))
        np.add.at(out, (np.repeat(cold_pos, len(plan.cold)), np.tile(plan.cold, len(draws))),
                  probs.ravel())
        return out / len(draws)


def _request_key(req: Request) -> tuple[int, int]:
    """A stable 64-bit digest (two 32-bit words) of a request: its id, user, candidates and
    their scores. Python's hash() of a str changes with every process."""
    h = hashlib.blake2b(digest_size=8)
    ctx = req.context
    h.update(repr((ctx.request_id, ctx.user_id, ctx.segment, req.items)).encode())
    h.update(np.ascontiguousarray(req.scores, dtype=np.float64).tobytes())
    word = int.from_bytes(h.digest(), "little")
    return word & 0xFFFFFFFF, word >> 32


def _padded(picks: np.ndarray, k: int) -> np.ndarray:
    """A slate's policy picks as a row of k, -1 for the slots left empty."""
    return np.concatenate([picks, np.full(k - len(picks), -1, np.int64)]).astype(np.int64)
