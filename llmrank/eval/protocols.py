"""The three evaluation protocols (``../shared/datasets/README.md``), applied to one shard of
users at a time so that the runner can parallelise and checkpoint.

- ``full``: score every item, mask the user's history (except the target), rank.
- ``candidates``: the target plus ``n_negatives`` random items the user never interacted
  with (LLMRank; seeded per user), shuffled; the ranker orders those only.
- ``retriever``: a retriever's top-N (history masked) is reordered by the ranker; a target
  outside the N is a miss (rank inf), and ``retrieved`` marks users whose target was in.
  The N are listed best first, ties in an order that ignores the target (``retrieved_matrix``).

Everything random comes from ``user_rng(seed, user, salt)``: a user's result never depends
on the shard it landed in or on processing order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from llmrank.data.candidates import random_candidates, user_rng
from llmrank.data.splits import LeaveOneOut
from llmrank.eval.base import BreaksTies, OutputStatus, Ranker, ReportsOutputStatus
from llmrank.eval.config import EvalProtocol
from llmrank.eval.metrics import target_ranks, tie_keys, top_k

_TIE_SALT = 7919  # user_rng salt for random tie-breaking (distinct from candidate sampling)


@dataclass
class ShardResult:
    """Per-user outcome of one shard (all arrays have one row per user, in shard order)."""

    users: np.ndarray  # user codes
    ranks: np.ndarray  # 1-based target rank, inf = not ranked (miss)
    lists: np.ndarray  # (n, L) ranked item codes, -1 padded
    list_scores: np.ndarray  # (n, L) the ranker's scores for ``lists``
    target_pos: np.ndarray  # target's 0-based position in the candidate list shown; -1 if none
    retrieved: np.ndarray  # bool: target among the candidates (always True for full/candidates)
    invalid: np.ndarray  # bool: ranker reported an unusable output
    n_missing: np.ndarray  # candidates without a score (NaN or reported missing)
    n_candidates: np.ndarray  # candidates the ranker had to order (n_items - |seen| for full)
    seconds: float = 0.0

    def save(self, path: Path) -> None:
        """Atomic write (temp file + rename): a kill never leaves a half shard behind."""
        tmp = path.with_suffix(".tmp.npz")
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seconds"}
        np.savez(tmp, seconds=np.float64(self.seconds), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ShardResult:
        with np.load(path) as z:
            kw = {f.name: z[f.name] for f in fields(cls) if f.name != "seconds"}
            return cls(seconds=float(z["seconds"]), **kw)

    @classmethod
    def concat(cls, parts: list[ShardResult]) -> ShardResult:
        if not parts:
            raise ValueError("no shards to concatenate")
        width = max(p.lists.shape[1] for p in parts)

        def pad(a: np.ndarray, fill: float) -> np.ndarray:
            if a.shape[1] == width:
                return a
            out = np.full((a.shape[0], width), fill, dtype=a.dtype)
            out[:, : a.shape[1]] = a
            return out

        kw = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(cls) if f.name not in ("seconds", "lists", "list_scores")
        }
        return cls(
            lists=np.concatenate([pad(p.lists, -1) for p in parts]),
            list_scores=np.concatenate([pad(p.list_scores, np.nan) for p in parts]),
            seconds=sum(p.seconds for p in parts), **kw,
        )


@dataclass
class ProtocolContext:
    """What a shard evaluation needs besides the ranker: split, stage, protocol, seed and,
    for the retriever protocol, the fitted retriever."""

    split: LeaveOneOut
    protocol: EvalProtocol
    seed: int
    retriever: Ranker | None = None

    @property
    def stage(self) -> str:
        return self.protocol.stage


def eval_users(split: LeaveOneOut, protocol: EvalProtocol) -> np.ndarray:
    """Users with both targets, optionally the first ``max_users`` of them (stable order)."""
    users = split.eval_users()
    if protocol.max_users is not None:
        users = users[: protocol.max_users]
    return users


def call_ranker(ranker: Ranker, users: np.ndarray, candidates: np.ndarray | None,
                stage: str) -> tuple[np.ndarray, OutputStatus]:
    """Scores plus output status (rankers without ``score_with_status`` are always valid)."""
    if isinstance(ranker, ReportsOutputStatus):
        scores, status = ranker.score_with_status(users, candidates, stage)
    else:
        scores, status = ranker.score(users, candidates, stage), OutputStatus.ok(len(users))
    scores = np.asarray(scores, dtype=np.float64)
    expected = (len(users), candidates.shape[1]) if candidates is not None else None
    if expected is not None and scores.shape != expected:
        raise ValueError(f"ranker {ranker.name!r} returned scores {scores.shape}, expected {expected}")
    return scores, status


def tie_scores(ranker: Ranker, users: np.ndarray, candidates: np.ndarray | None,
               stage: str) -> np.ndarray | None:
    """The ranker's own tie-break scores (``BreaksTies``), or None."""
    if not isinstance(ranker, BreaksTies):
        return None
    sec = ranker.tie_scores(users, candidates, stage)
    return None if sec is None else np.asarray(sec, dtype=np.float64)


def _keys(ctx: ProtocolContext, users: np.ndarray, shape: tuple[int, int],
          targets: np.ndarray) -> np.ndarray:
    if ctx.protocol.ties != "random":
        return tie_keys(shape, targets, ctx.protocol.ties)
    return np.stack([user_rng(ctx.seed, int(u), _TIE_SALT).random(shape[1]) for u in users])


def _rank_rows(ctx: ProtocolContext, users: np.ndarray, scores: np.ndarray,
               target_cols: np.ndarray, columns: np.ndarray | None,
               secondary: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of the targets and the top ``list_len`` (item codes, scores) per row.
    ``columns`` maps score columns to item codes (None: column = item code). Order: score,
    then the ranker's ``secondary`` tie scores, then the protocol's tie policy."""
    keys = _keys(ctx, users, scores.shape, target_cols)
    ranks = target_ranks(scores, target_cols, keys=keys, secondary=secondary)
    cols = top_k(scores, ctx.protocol.list_len, keys, secondary)
    top_scores = np.take_along_axis(scores, cols, axis=1)  # NaN (unscored) rows stay listed, last
    items = cols if columns is None else np.take_along_axis(columns, cols, axis=1)
    items = np.where(np.isneginf(top_scores), -1, items)  # masked items are not recommended
    return ranks, items, top_scores


def _masked_full_scores(ranker: Ranker, ctx: ProtocolContext, users: np.ndarray,
                        targets: np.ndarray) -> tuple[np.ndarray, OutputStatus, np.ndarray]:
    """Full score rows with each user's history at -inf (a re-consumed target excepted),
    the output status and the number of items left to order."""
    split, stage = ctx.split, ctx.stage
    scores, status = call_ranker(ranker, users, None, stage)
    n_items = split.dataset.n_items
    if scores.shape != (len(users), n_items):
        raise ValueError(f"ranker {ranker.name!r} returned {scores.shape}, expected {(len(users), n_items)}")
    scores = scores.copy()
    n_cand = np.empty(len(users), dtype=np.int64)
    for i, u in enumerate(users):
        seen = split.seen(int(u), stage)
        seen = seen[seen != targets[i]]  # a re-consumed target still competes
        scores[i, seen] = -np.inf
        n_cand[i] = n_items - len(np.unique(seen))
    return scores, status, n_cand


def _targets(ctx: ProtocolContext, users: np.ndarray) -> np.ndarray:
    return np.array([ctx.split.target(int(u), ctx.stage) for u in users], dtype=np.int64)


def full_ranking_shard(ranker: Ranker, ctx: ProtocolContext, users: np.ndarray) -> ShardResult:
    targets = _targets(ctx, users)
    scores, status, n_cand = _masked_full_scores(ranker, ctx, users, targets)
    n_missing = np.isnan(scores).sum(axis=1) + status.n_missing
    sec = tie_scores(ranker, users, None, ctx.stage)
    ranks, items, top_scores = _rank_rows(ctx, users, scores, targets, None, sec)
    n = len(users)
    return ShardResult(users, ranks, items, top_scores, np.full(n, -1), np.ones(n, bool),
                       status.invalid, n_missing, n_cand)


def candidate_matrix(ctx: ProtocolContext, users: np.ndarray) -> np.ndarray:
    """(n, 1 + n_negatives) candidates per user: target + random never-interacted items."""
    split = ctx.split
    hists = split.dataset.histories()
    return np.stack([
        random_candidates(split.dataset.n_items, split.target(int(u), ctx.stage), hists[int(u)],
                          n_negatives=ctx.protocol.n_negatives, seed=ctx.seed, user=int(u))
        for u in users
    ])


def retrieved_matrix(ctx: ProtocolContext, users: np.ndarray) -> np.ndarray:
    """(n, N) the retriever's top-N unseen items per user, best first, -1 padded (items it
    left unscored are not proposed). Whether a target tied at the cut makes the N follows
    the tie policy, but the order of tied items never depends on which one is the target
    (item-code order; seeded random order under ``ties='random'``): the list position
    must not tell the reranker the answer."""
    if ctx.retriever is None:
        raise ValueError("retriever protocol needs a fitted retriever in the context")
    n = ctx.protocol.n_retrieve
    targets = _targets(ctx, users)
    scores, _, _ = _masked_full_scores(ctx.retriever, ctx, users, targets)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    sec = tie_scores(ctx.retriever, users, None, ctx.stage)
    chosen = top_k(scores, n, _keys(ctx, users, scores.shape, targets), sec)
    blind = np.full_like(targets, -1)  # keys as if no column were the target
    neutral = np.take_along_axis(_keys(ctx, users, scores.shape, blind), chosen, axis=1)
    sub_sec = None if sec is None else np.take_along_axis(
        np.broadcast_to(sec, scores.shape), chosen, axis=1)
    sub_scores = np.take_along_axis(scores, chosen, axis=1)
    cols = np.take_along_axis(chosen, top_k(sub_scores, n, neutral, sub_sec), axis=1)
    top = np.take_along_axis(scores, cols, axis=1)
    return np.where(np.isneginf(top), -1, cols)


def _score_candidates(ranker: Ranker, users: np.ndarray, cands: np.ndarray, stage: str,
                      ) -> tuple[np.ndarray, OutputStatus, np.ndarray | None]:
    """Scores, status and tie scores for a candidate matrix whose -1 entries are padding.
    The ranker only ever sees real items (an LLM prompt must not list a stand-in item):
    rows are compacted and sent in groups of equal length; padding scores NaN."""
    pad = cands < 0
    if not pad.any():
        return (*call_ranker(ranker, users, cands, stage), tie_scores(ranker, users, cands, stage))
    scores = np.full(cands.shape, np.nan)
    status = OutputStatus.ok(len(users))
    sec: np.ndarray | None = None
    lengths = (~pad).sum(axis=1)
    for length in np.unique(lengths[lengths > 0]):
        rows = np.flatnonzero(lengths == length)
        sub = np.stack([cands[r][~pad[r]] for r in rows])
        got, st = call_ranker(ranker, users[rows], sub, stage)
        status.invalid[rows], status.n_missing[rows] = st.invalid, st.n_missing
        got_sec = tie_scores(ranker, users[rows], sub, stage)
        for j, r in enumerate(rows):
            scores[r, ~pad[r]] = got[j]
            if got_sec is not None:
                sec = np.full(cands.shape, np.nan) if sec is None else sec
                sec[r, ~pad[r]] = np.broadcast_to(got_sec, got.shape)[j]
    return scores, status, sec


def candidates_shard(ranker: Ranker, ctx: ProtocolContext, users: np.ndarray,
                     cands: np.ndarray) -> ShardResult:
    """Order a given candidate matrix (-1 entries are padding: never shown to the ranker,
    never ranked)."""
    targets = _targets(ctx, users)
    hit = cands == targets[:, None]
    target_cols = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    pad = cands < 0
    scores, status, sec = _score_candidates(ranker, users, cands, ctx.stage)
    n_missing = (np.isnan(scores) & ~pad).sum(axis=1) + status.n_missing
    scores = np.where(pad, -np.inf, scores)
    ranks, items, top_scores = _rank_rows(ctx, users, scores, target_cols, cands, sec)
    return ShardResult(users, ranks, items, top_scores, target_cols, target_cols >= 0,
                       status.invalid, n_missing, (~pad).sum(axis=1))


def evaluate_shard(ranker: Ranker, ctx: ProtocolContext, users: np.ndarray) -> ShardResult:
    """Run ``ranker`` on ``users`` under ``ctx.protocol``."""
    start = time.perf_counter()
    name = ctx.protocol.name
    if name == "full":
        res = full_ranking_shard(ranker, ctx, users)
    elif name == "candidates":
        res = candidates_shard(ranker, ctx, users, candidate_matrix(ctx, users))
    elif name == "retriever":
        res = candidates_shard(ranker, ctx, users, retrieved_matrix(ctx, users))
    else:
        raise ValueError(f"unknown protocol {name!r}")
    res.seconds = time.perf_counter() - start
    return res
