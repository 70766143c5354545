"""Per-user ranking metrics.

The leave-one-out protocols have exactly one relevant item per user, so every accuracy
metric is a function of the 1-based rank of that target: compute ranks once with
``target_ranks`` and derive Recall/HR, NDCG and MRR at any K with ``metrics_from_ranks``.
A target that was never ranked (e.g. a retriever did not return it, or it was masked) has
rank ``inf`` and scores 0 on every metric; a target the ranker left unscored (NaN) is ranked
last among the candidates. ``ranking_metrics`` is the general multi-relevance version (binary
gains) used to cross-check against ranx.

All functions return per-user arrays, never means: confidence intervals and paired tests
(llmrank.eval.stats) need the per-user values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

Ties = Literal["pessimistic", "optimistic", "random"]
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)
ACCURACY_METRICS: tuple[str, ...] = ("recall", "ndcg", "mrr")


def tie_keys(
    shape: tuple[int, int], targets: np.ndarray, ties: Ties = "pessimistic",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Secondary sort keys (ascending = better) that break equal scores.

    ``pessimistic`` puts the target after every item tied with it (the conservative default:
    a scorer that gives many items the same score, such as popularity, earns no credit for
    the tie), ``optimistic`` before them, ``random`` at a uniformly random place (pass a
    seeded ``rng``). Other tied items keep column order, so ranked lists are deterministic."""
    n_cols = shape[1]
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if ties == "random":
        rng = rng or np.random.default_rng(0)
        return rng.random(shape)
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties must be pessimistic, optimistic or random, got {ties!r}")
    keys = np.broadcast_to(np.arange(n_cols, dtype=np.float64), shape).copy()
    rows = np.flatnonzero(targets >= 0)
    keys[rows, targets[rows]] = np.inf if ties == "pessimistic" else -np.inf
    return keys


def target_ranks(
    scores: np.ndarray,
    targets: np.ndarray,
    *,
    ties: Ties = "pessimistic",
    rng: np.random.Generator | None = None,
    keys: np.ndarray | None = None,
    secondary: np.ndarray | None = None,
) -> np.ndarray:
    """1-based rank of each row's target column in ``scores`` (higher score = better).

    ``scores`` is (n_users, n_columns); ``targets`` holds a column index per row, or -1 when
    the target is absent from the row (rank ``inf``). Items that must not compete (the
    user's history) should be set to ``-inf`` by the caller; a target scored ``-inf`` counts
    as a miss. NaN means 'not scored' (a missing output): such an item is ranked last, after
    every other score but before masked items, so a NaN target gets a finite rank. Equal
    scores are ordered by ``secondary`` (the ranker's own tie-break scores, higher = better;
    optional), and what is still tied by ``tie_keys`` (or the ``keys`` given, so that ranks
    agree with the lists from ``top_k`` built with the same keys and ``secondary``)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None, :]
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if len(targets) != scores.shape[0]:
        raise ValueError(f"{len(targets)} targets for {scores.shape[0]} score rows")
    if keys is None:
        keys = tie_keys(scores.shape, targets, ties, rng)
    ranks = np.full(len(targets), np.inf)
    rows = np.flatnonzero(targets >= 0)
    if not len(rows):
        return ranks
    tier = _tiers(scores[rows])
    s = np.nan_to_num(scores[rows], nan=-np.inf, neginf=-np.inf, posinf=np.inf)
    kk = keys[rows]
    idx = np.arange(len(rows))
    t = s[idx, targets[rows]][:, None]
    tt = tier[idx, targets[rows]][:, None]
    tk = kk[idx, targets[rows]][:, None]
    tied = (tier == tt) & (s == t)
    if secondary is not None:
        sec = _secondary(secondary, scores.shape)[rows]
        ts = sec[idx, targets[rows]][:, None]
        after_tie = (sec > ts) | ((sec == ts) & (kk < tk))
    else:
        after_tie = kk < tk
    before = (tier < tt) | ((tier == tt) & (s > t)) | (tied & after_tie)
    r = before.sum(axis=1) + 1.0
    r[tt[:, 0] == _MASKED] = np.inf
    ranks[rows] = r
    return ranks


_SCORED, _UNSCORED, _MASKED = 0, 1, 2


def _tiers(scores: np.ndarray) -> np.ndarray:
    """Per cell: 0 scored, 1 NaN (not scored: ranked after every score), 2 -inf (masked:
    never ranked). A NaN must not share -inf's 'miss', nor outrank a real score."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(scores), _UNSCORED, np.where(np.isneginf(scores), _MASKED, _SCORED))


def rank_of(ranked: Sequence[int] | Sequence[str] | np.ndarray, target: int | str) -> float:
    """1-based position of ``target`` (an item code or id) in an already ranked list,
    ``inf`` if absent."""
    hits = np.flatnonzero(np.asarray(ranked) == target)
    return float(hits[0] + 1) if len(hits) else float("inf")


def metrics_from_ranks(
    ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS,
    names: Iterable[str] = ACCURACY_METRICS,
) -> dict[str, np.ndarray]:
    """Per-user ``recall@k`` (= HR@k with one target), ``ndcg@k`` and ``mrr@k``.

    With one relevant item, NDCG@k = 1/log2(rank+1) if rank <= k (the ideal DCG is 1), and
    MRR@k = 1/rank if rank <= k. Ranks are 1-based, ``inf`` for a miss; NaN or a rank
    below 1 (a 0-based rank?) is refused rather than scored as a miss or as NDCG = inf."""
    ranks = np.asarray(ranks, dtype=np.float64)
    bad = np.isnan(ranks) | (ranks < 1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} target rank(s) are NaN or below 1 (first: "
                         f"{ranks[bad][0]}); ranks are 1-based, inf for a miss")
    out: dict[str, np.ndarray] = {}
    wanted = set(names)
    unknown = wanted - set(ACCURACY_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; valid: {ACCURACY_METRICS}")
    finite = np.where(np.isfinite(ranks), ranks, 1.0)
    for k in ks:
        hit = ranks <= k
        if "recall" in wanted:
            out[f"recall@{k}"] = hit.astype(np.float64)
        if "ndcg" in wanted:
            out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(finite + 1.0), 0.0)
        if "mrr" in wanted:
            out[f"mrr@{k}"] = np.where(hit, 1.0 / finite, 0.0)
    return out


def ranking_metrics(
    ranked: Sequence[Sequence[int]], relevant: Sequence[Iterable[int]],
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, np.ndarray]:
    """Per-user Recall/NDCG/MRR@k for any number of relevant items (binary relevance).

    recall@k = |relevant in top k| / |relevant|; ndcg@k = DCG@k / IDCG@k with gain 1 and
    discount 1/log2(pos+1); mrr@k = 1/position of the first relevant item in the top k.
    Users without relevant items score 0 (ranx does the same)."""
    ks = list(ks)
    n = len(ranked)
    if len(relevant) != n:
        raise ValueError(f"{len(relevant)} relevance sets for {n} ranked lists")
    out = {f"{m}@{k}": np.zeros(n) for k in ks for m in ACCURACY_METRICS}
    for u, (lst, rel) in enumerate(zip(ranked, relevant, strict=True)):
        rel_set = set(int(x) for x in rel)
        if not rel_set:
            continue
        hits = np.fromiter((int(x) in rel_set for x in lst), dtype=bool, count=len(lst))
        pos = np.flatnonzero(hits) + 1
        for k in ks:
            p = pos[pos <= k]
            out[f"recall@{k}"][u] = len(p) / len(rel_set)
            idcg = float(np.sum(1.0 / np.log2(np.arange(2, min(len(rel_set), k) + 2))))
            out[f"ndcg@{k}"][u] = float(np.sum(1.0 / np.log2(p + 1.0))) / idcg
            out[f"mrr@{k}"][u] = 1.0 / p[0] if len(p) else 0.0
    return out


def top_k(scores: np.ndarray, k: int, keys: np.ndarray | None = None,
          secondary: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first. Ties are broken by
    ``secondary`` (descending) and then ``keys`` (ascending; see ``tie_keys``), else by
    column order, so the lists written to run files are deterministic and agree with
    ``target_ranks`` given the same keys and secondary scores: NaN (unscored) after every
    score, -inf (masked) last."""
    raw = np.asarray(scores, dtype=np.float64)
    tier = _tiers(raw)
    scores = np.nan_to_num(raw, nan=-np.inf, neginf=-np.inf, posinf=np.inf)
    k = min(k, scores.shape[1])
    if keys is None:
        keys = np.broadcast_to(np.arange(scores.shape[1], dtype=np.float64), scores.shape)
    sort_keys: tuple[np.ndarray, ...] = (keys, -scores, tier)
    if secondary is not None:
        sort_keys = (keys, -_secondary(secondary, scores.shape), -scores, tier)
    order = np.lexsort(sort_keys, axis=1)
    return order[:, :k]


def _secondary(secondary: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Tie-break scores as float64 of ``shape``; NaN (no opinion) sorts last."""
    sec = np.asarray(secondary, dtype=np.float64)
    if sec.ndim == 1:
        sec = sec[None, :]
    if sec.shape != shape:
        raise ValueError(f"secondary scores {sec.shape} do not match scores {shape}")
    return np.nan_to_num(sec, nan=-np.inf, neginf=-np.inf, posinf=np.inf)
