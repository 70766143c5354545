"""Filtered top-k search on a FaissIndex: per-query exclusion sets and a keep-predicate are
applied inside retrieval so that k results survive them.

Strategy, cheapest first:
1. Over-fetch and refill: estimate the predicate's pass rate on a seeded sample of ids, fetch
   enough hits for k to survive exclusions and filtering, and fetch 4x more for the queries
   that came up short (at most a few rounds). Batched, GPU-friendly, and the predicate runs
   only on returned hits.
2. Allowed set: when the predicate is very selective or refills ran out, evaluate it once over
   the catalog. A small allowed set is searched exactly (reconstructed vectors, numpy); a
   large one through a FAISS IDSelector with a widened ANN beam."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from llmrank.index.base import Hits, KeepFn

if TYPE_CHECKING:
    from llmrank.index.faiss_index import FaissIndex

log = logging.getLogger(__name__)

MIN_PASS_RATE = 0.02  # below this, over-fetching costs more than evaluating the predicate
SAMPLE = 256
ROUNDS = 3
GROWTH = 4
SLACK = 1.3
EXACT_LIMIT = 100_000  # allowed sets up to this size are searched exactly


class _Keep:
    """Memoises the predicate over one search call (refill rounds see the same hits)."""

    def __init__(self, keep: KeepFn | None) -> None:
        self.keep = keep
        self.memo: dict[str, bool] = {}

    def __call__(self, item_id: str) -> bool:
        if self.keep is None:
            return True
        hit = self.memo.get(item_id)
        if hit is None:
            hit = self.memo[item_id] = bool(self.keep(item_id))
        return hit


def filtered_search(index: FaissIndex, queries: np.ndarray, k: int,
                    exclude: Sequence[Collection[str]] | None, keep: KeepFn | None) -> list[Hits]:
    nq = queries.shape[0]
    if k <= 0 or len(index) == 0:
        return [[] for _ in range(nq)]
    excl = [set(e) for e in exclude] if exclude is not None else [set() for _ in range(nq)]
    pred = _Keep(keep)
    rate = 1.0 if keep is None else _pass_rate(index, pred)
    results: list[Hits | None] = [None] * nq
    pending = list(range(nq))
    if rate >= MIN_PASS_RATE:
        pending = _overfetch(index, queries, k, excl, pred, rate, results)
    if pending:
        _allowed_set(index, queries, k, excl, pred, pending, results)
    return [r if r is not None else [] for r in results]


def _pass_rate(index: FaissIndex, pred: _Keep) -> float:
    """Share of a seeded sample of live ids that the predicate keeps (0 when none is kept)."""
    id_of = index._id_of
    rng = np.random.default_rng(0)
    if index._next_label <= 4 * SAMPLE:
        sample = list(id_of.values())[:SAMPLE * 4]
    else:
        labels = rng.integers(0, index._next_label, size=SAMPLE * 2)
        sample = [id_of[lab] for lab in labels.tolist() if lab in id_of][:SAMPLE]
    if not sample:
        return 1.0
    return sum(pred(i) for i in sample) / len(sample)


def _collect(index: FaissIndex, scores: np.ndarray, labels: np.ndarray, excl: set[str],
             pred: _Keep, k: int) -> Hits:
    hits: Hits = []
    id_of = index._id_of
    for s, lab in zip(scores.tolist(), labels.tolist(), strict=True):
        iid = id_of.get(lab)  # -1 (nothing found) and tombstones are not in the map
        if iid is None or iid in excl or not pred(iid):
            continue
        hits.append((iid, float(s)))
        if len(hits) == k:
            break
    return hits


def _overfetch(index: FaissIndex, queries: np.ndarray, k: int, excl: list[set[str]],
               pred: _Keep, rate: float, results: list[Hits | None]) -> list[int]:
    """Fill ``results`` for the queries it can; return the ones still short of k."""
    n_live, ntotal = len(index), index.ntotal
    # HNSW tombstones (up to a third of the graph) take their share of the hits, not all of
    # them: adding every tombstone to every fetch made ef that large on each search
    live_share = n_live / max(1, ntotal)
    fetch = {q: math.ceil((k + sum(1 for i in excl[q] if i in index)) / rate * SLACK
                          / live_share)
             for q in range(len(excl))}
    pending = list(range(len(excl)))
    for _ in range(ROUNDS):
        if not pending:
            break
        f = min(max(fetch[q] for q in pending), ntotal)
        scores, labels = index.raw_search(queries[pending], f)
        exhaustive = index.kind == "flat" and f >= ntotal
        still: list[int] = []
        for row, q in enumerate(pending):
            hits = _collect(index, scores[row], labels[row], excl[q], pred, k)
            if len(hits) >= k or exhaustive:
                results[q] = hits
            else:
                still.append(q)
                fetch[q] = f * GROWTH
        pending = still
        if f >= ntotal and index.kind == "flat":
            break
    return pending


def _allowed_set(index: FaissIndex, queries: np.ndarray, k: int, excl: list[set[str]],
                 pred: _Keep, pending: list[int], results: list[Hits | None]) -> None:
    allowed = np.fromiter((lab for lab, iid in index._id_of.items() if pred(iid)), dtype=np.int64)
    if len(allowed) == 0:
        for q in pending:
            results[q] = []
        return
    if len(allowed) <= EXACT_LIMIT:
        _exact(index, queries, k, excl, allowed, pending, results)
        return
    f = index.faiss
    allowed_sel = f.IDSelectorBatch(allowed)
    for q in pending:
        ex = index.labels_of([i for i in excl[q] if i in index])
        sel = f.IDSelectorAnd(allowed_sel, f.IDSelectorNot(f.IDSelectorBatch(ex))) if len(ex) \
            else allowed_sel
        scores, labels = index.raw_search(queries[q:q + 1], k, sel=sel, boost=True)
        results[q] = _collect(index, scores[0], labels[0], excl[q], pred, k)
        if len(results[q] or []) < k:
            log.warning("filtered ANN search found %d of %d hits", len(results[q] or []), k)


def _exact(index: FaissIndex, queries: np.ndarray, k: int, excl: list[set[str]],
           allowed: np.ndarray, pending: list[int], results: list[Hits | None]) -> None:
    """Exact inner products against the allowed vectors, excluded ones masked out."""
    vecs = index._reconstruct_labels(allowed)
    allowed_ids = [index._id_of[lab] for lab in allowed.tolist()]
    position = {iid: j for j, iid in enumerate(allowed_ids)}
    for start in range(0, len(pending), 64):
        block = pending[start:start + 64]
        scores = queries[block] @ vecs.T
        for row, q in enumerate(block):
            s = scores[row]
            masked = [position[i] for i in excl[q] if i in position]
            if masked:
                s[masked] = -np.inf
            n_valid = len(allowed_ids) - len(masked)
            kk = min(k, n_valid)
            if kk <= 0:
                results[q] = []
                continue
            top = np.argpartition(-s, kk - 1)[:kk]
            top = top[np.argsort(-s[top], kind="stable")]
            results[q] = [(allowed_ids[j], float(s[j])) for j in top.tolist()]
