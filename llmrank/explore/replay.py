"""Replay simulator: walk a dataset in time order and let policies show slates to the real
users, with the users' real next interactions as the only clicks.

Protocol:
1. Interactions are ordered by (timestamp, file order). The first ``warmup`` share fits the
   prior (and the item embeddings and popularity the policies use); nothing after it is seen
   by any model before its time.
2. At each served event (user u consumes item i at time t), u's history h_t is everything u
   did before t. The prior scores the catalog for h_t; the top ``n_candidates`` items not in
   h_t are the candidate pool, with their prior scores (the "reranked list").
3. Every policy, in lockstep on the same request, shows k items. A shown item is clicked
   (reward 1) when it is among u's next ``lookahead`` items (i and the following ones), else 0.
   Each policy learns online from its own rewards, once they have happened: a request's
   rewards are fed to the policy after the last event of its lookahead window, before the
   first request served after it (lookahead 1: before the next request).
4. Tracked over time: cumulative hit rate (share of requests with at least one click), clicks,
   and catalog coverage (distinct items shown / catalog size).
Unserved events (when ``max_steps`` samples a subset) still extend the users' histories."""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.errors import ConfigError
from llmrank.explore.base import ExploreContext, Policy
from llmrank.explore.features import ItemFeatures, text_embeddings
from llmrank.explore.priors import Prior, interaction_embeddings

log = logging.getLogger(__name__)


@dataclass
class ReplayConfig:
    k: int = 10
    n_candidates: int = 100
    warmup: float = 0.5
    max_steps: int | None = None  # served requests, sampled uniformly (seeded); None = all
    lookahead: int = 1
    history_items: int = 50
    embedding_dim: int = 32
    # item vectors for MMR and the linear bandit: 'interactions' (SVD of the warm-up log) or
    # 'text' (the text embedder, PCA to embedding_dim; needs no log, as on a new platform)
    item_vectors: str = "interactions"
    segment_by: str | None = None  # a user attribute (e.g. 'gender'), or 'activity' buckets
    refit_every: int = 0  # refit the prior on everything seen so far every N served steps
    seed: int = 0  # the max_steps sample, the item vectors and every policy without its own seed


@dataclass
class PolicySpec:
    label: str  # e.g. 'thompson-flat'
    name: str  # registry name
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PolicyTrace:
    label: str
    hits: np.ndarray  # (steps,) bool: the slate held a clicked item
    clicks: np.ndarray  # (steps,) number of clicked items
    coverage: np.ndarray  # (steps,) distinct items shown so far
    shown: Counter[str]
    seconds: float
    # beyond-accuracy per request (NaN where the side information is missing)
    diversity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # intra-list distance
    novelty: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mean self-information
    miscalibration: np.ndarray = field(default_factory=lambda: np.zeros(0))  # KL(user || slate)


@dataclass
class ReplayResult:
    dataset: str
    prior: str
    config: ReplayConfig
    n_items: int
    steps: int
    timestamps: np.ndarray  # (steps,) event time of each served request
    pool_items: int  # distinct items that ever were candidates (the coverage ceiling)
    traces: dict[str, PolicyTrace]
    seconds: float = 0.0
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (steps,) user code per request


def build_features(dataset: Dataset, warm: list[np.ndarray], warm_mask: np.ndarray,
                   dim: int, seed: int, item_vectors: str = "interactions") -> ItemFeatures:
    emb: np.ndarray | None = None
    if item_vectors == "text":
        emb = text_embeddings(dataset, dim)
    elif item_vectors != "interactions":
        raise ConfigError(f"unknown item_vectors {item_vectors!r}; use interactions or text")
    elif dim > 0:
        emb = interaction_embeddings(dataset, warm, dim=dim, seed=seed)
    return ItemFeatures.from_dataset(dataset, embeddings=emb, interaction_mask=warm_mask)


def replay(dataset: Dataset, specs: Sequence[PolicySpec], prior: Prior,
           config: ReplayConfig | None = None, *,
           make: Callable[[PolicySpec, ItemFeatures], Policy] | None = None,
           progress: Callable[[int, int], None] | None = None,
           log_to: Any = None, log_label: str | None = None) -> ReplayResult:
    """Run the replay for every policy spec. ``log_to`` (a FeedbackStore) receives the
    impressions (with propensities) and clicks of the policy labelled ``log_label``."""
    cfg = config or ReplayConfig()
    _check_config(cfg)
    started = time.perf_counter()
    inter = dataset.interactions
    order = np.lexsort((inter.order, inter.timestamp))
    n_events = len(order)
    cut = round(cfg.warmup * n_events)
    if cut >= n_events:
        raise ConfigError(f"no requests to serve: dataset {dataset.name!r} has {n_events} "
                          f"interaction(s) and warmup={cfg.warmup} keeps {cut} for the warm-up")
    timelines = dataset.histories()  # per user, sorted by (timestamp, order) like ``order``
    # position of each event inside its user's timeline
    ev_user = inter.user[order].astype(np.int64)
    ev_pos = np.zeros(n_events, np.int64)
    seen_count = np.zeros(dataset.n_users, np.int64)
    for e, u in enumerate(ev_user.tolist()):
        ev_pos[e] = seen_count[u]
        seen_count[u] += 1
    # global index of each user's events in ``order``: when a lookahead window has happened
    ev_index = np.zeros(n_events, np.int64)
    user_start = np.concatenate([[0], np.cumsum(seen_count)])
    ev_index[user_start[ev_user] + ev_pos] = np.arange(n_events)
    warm_len = np.zeros(dataset.n_users, np.int64)
    np.add.at(warm_len, ev_user[:cut], 1)
    warm = [timelines[u][: warm_len[u]] for u in range(dataset.n_users)]
    warm_mask = np.zeros(n_events, dtype=bool)
    warm_mask[order[:cut]] = True
    # features first: a bad item_vectors setting fails before the prior's (possibly long) fit
    features = build_features(dataset, warm, warm_mask, cfg.embedding_dim, cfg.seed,
                              cfg.item_vectors)
    prior.fit(dataset, warm)
    from llmrank.explore import make_policy

    builder = make or (lambda spec, feats: make_policy(spec.name, _seeded(spec.options, cfg.seed),
                                                       features=feats))
    policies = {s.label: builder(s, features) for s in specs}
    stream = np.arange(cut, n_events)
    if cfg.max_steps is not None and cfg.max_steps < len(stream):
        rng = np.random.default_rng(cfg.seed)
        stream = np.sort(rng.choice(stream, size=cfg.max_steps, replace=False))
    steps = len(stream)
    hits = {s.label: np.zeros(steps, bool) for s in specs}
    clicks = {s.label: np.zeros(steps, np.int32) for s in specs}
    coverage = {s.label: np.zeros(steps, np.int32) for s in specs}
    shown: dict[str, Counter[str]] = {s.label: Counter() for s in specs}
    extra = {s.label: np.full((steps, 3), np.nan) for s in specs}
    seconds = dict.fromkeys(hits, 0.0)
    pool: set[int] = set()
    stamps = np.zeros(steps, np.int64)
    users = ev_user[stream]
    item_ids = dataset.item_ids
    # (event index that closes the window, step, label, ctx, slate, rewards): a reward is
    # learned once the replay has walked past the last event of its lookahead window
    pending: list[tuple[int, int, str, ExploreContext, Any, list[float]]] = []

    def learn(before: int) -> None:
        while pending and pending[0][0] < before:
            _, _, label, ctx, slate, rewards = heapq.heappop(pending)
            t0 = time.perf_counter()
            policies[label].update(ctx, slate, rewards)
            seconds[label] += time.perf_counter() - t0

    for step, e in enumerate(stream.tolist()):
        u, pos = int(ev_user[e]), int(ev_pos[e])
        learn(e)
        closes = int(ev_index[user_start[u] + min(pos + cfg.lookahead, int(seen_count[u])) - 1])
        history = timelines[u][:pos]
        if cfg.refit_every and step and step % cfg.refit_every == 0:
            before = np.bincount(ev_user[:e], minlength=dataset.n_users)
            prior.fit(dataset, [timelines[v][: before[v]] for v in range(dataset.n_users)])
        future = set(timelines[u][pos: pos + cfg.lookahead].tolist())
        ranked = _candidates(prior, u, history, dataset.n_items, cfg.n_candidates)
        pool.update(ranked[0].tolist())
        ranked_ids = [(item_ids[c], float(s)) for c, s in zip(ranked[0], ranked[1], strict=True)]
        ctx = ExploreContext(
            user_id=dataset.user_ids[u],
            history=[item_ids[c] for c in history[-cfg.history_items:]],
            segment=_segment(dataset, u, len(history), cfg.segment_by),
            request_id=f"replay-{step}",
        )
        stamps[step] = int(inter.timestamp[order[e]])
        user_mix = features.distribution("genre", ctx.history)
        for label, policy in policies.items():
            t0 = time.perf_counter()
            logging_this = log_to is not None and label == log_label
            slate = policy.select(ranked_ids, cfg.k, ctx, propensities=logging_this)
            rewards = [1.0 if dataset.item_code(i) in future else 0.0 for i in slate.items]
            seconds[label] += time.perf_counter() - t0
            heapq.heappush(pending, (closes, step, label, ctx, slate, rewards))
            n_click = int(sum(rewards))
            hits[label][step] = n_click > 0
            clicks[label][step] = n_click
            shown[label].update(slate.items)
            coverage[label][step] = len(shown[label])
            extra[label][step] = slate_stats(features, features.codes(slate.items), user_mix)
            if logging_this:
                _log(log_to, slate, ctx, rewards, float(stamps[step]))
        if progress is not None:
            progress(step + 1, steps)
    learn(n_events)
    traces = {label: PolicyTrace(label, hits[label], clicks[label], coverage[label], shown[label],
                                 seconds[label], extra[label][:, 0], extra[label][:, 1],
                                 extra[label][:, 2]) for label in policies}
    return ReplayResult(dataset.name, prior.name, cfg, dataset.n_items, steps, stamps, len(pool),
                        traces, time.perf_counter() - started, users)


def _check_config(cfg: ReplayConfig) -> None:
    """Settings under which the replay would measure nothing, or something other than what
    the report says (slates smaller than k), are errors."""
    if cfg.k < 1:
        raise ConfigError(f"replay k must be at least 1, got {cfg.k}")
    if cfg.n_candidates < cfg.k:
        raise ConfigError(f"replay k={cfg.k} is larger than n_candidates={cfg.n_candidates}: "
                          "every slate would be smaller than k")
    if cfg.lookahead < 1:
        raise ConfigError(f"replay lookahead must be at least 1 (the next item), got {cfg.lookahead}")
    if not 0.0 <= cfg.warmup < 1.0:
        raise ConfigError(f"replay warmup must be in [0, 1), got {cfg.warmup}")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ConfigError(f"replay max_steps must be at least 1 (or None for all), got {cfg.max_steps}")


def _seeded(options: dict[str, Any], seed: int) -> dict[str, Any]:
    """A policy's options with the replay's seed, so that the seed changes every random draw
    of a run (a policy's own ``seed`` option wins)."""
    return {"seed": seed, **options}


def slate_stats(features: ItemFeatures, codes: np.ndarray,
                user_mix: np.ndarray | None, alpha: float = 0.01) -> tuple[float, float, float]:
    """(intra-list distance: mean pairwise 1 - cosine; mean novelty in bits; KL of the user's
    genre mix to the slate's, smoothed as in Steck 2018)."""
    ild = nov = kl = float("nan")
    emb = features.embedding_rows(codes)
    if emb is not None and len(codes) > 1:
        sim = emb @ emb.T
        n = len(codes)
        ild = float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
    novelty = features.novelty(codes)
    if novelty is not None:
        nov = float(novelty.mean())
    rows = features.attribute_rows("genre", codes)
    if user_mix is not None and rows is not None:
        q = (rows / np.maximum(rows.sum(1, keepdims=True), 1.0)).mean(0)
        q = (1 - alpha) * q + alpha * user_mix
        p = user_mix
        mask = p > 0
        kl = float((p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))).sum())
    return ild, nov, kl


def _candidates(prior: Prior, user: int, history: np.ndarray, n_items: int,
                n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-n item codes by prior score, best first: never an item of the history, nor one
    the prior scores -inf (or NaN): not retrieved."""
    scores = np.asarray(prior.score(user, history, None), dtype=np.float64).copy()
    scores[history] = -np.inf
    n = min(n, int(np.isfinite(scores).sum()))  # every finite score beats the -inf ones
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top, scores[top]


def _segment(dataset: Dataset, user: int, n_history: int, by: str | None) -> str | None:
    if by is None:
        return None
    if by == "activity":  # history-length buckets: new, casual, regular, heavy
        return "new" if n_history < 5 else "casual" if n_history < 20 else "regular" if n_history < 100 else "heavy"
    attrs = dataset.users[dataset.user_ids[user]].attributes
    value = attrs.get(by)
    return None if value is None else str(value)


def _log(store: Any, slate: Any, ctx: ExploreContext, rewards: list[float], ts: float) -> None:
    from llmrank.feedback.records import FeedbackEvent

    assert ctx.request_id is not None
    imp = slate.impression(ctx.request_id, ctx.user_id, timestamp=ts, context=ctx.to_log())
    events = [FeedbackEvent(ctx.user_id, item, "click", request_id=ctx.request_id, position=p,
                            timestamp=ts, event_id=f"{ctx.request_id}-{p}")
              for p, (item, r) in enumerate(zip(slate.items, rewards, strict=True)) if r > 0]
    store.log_many([imp], events)
