"""Shared pieces of the reranker benchmarks: data, users, and a zero-shot reranker Ranker for
the evaluation harness whose per-permutation scores are cached, so that '1 permutation' and
'3 permutations' are measured on the very same model outputs (permutation 0 is the given
order, exactly what a 1-permutation reranker scores)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.rerank.prompt import RankPromptBuilder
from llmrank.rerank.scorer import LabelScorer, RankInput, permutation

log = logging.getLogger(__name__)

USER_SALT = 6060  # the user-sample salt of bench_finetune_lib.sampled_split: same samples


def prepared(dataset: str = "ml-latest-small", kcore: int = 5) -> Any:
    """ml-latest-small 5-core (LlamaRec preprocessing), leave-one-out by timestamp."""
    from llmrank.eval.config import EvalData
    from llmrank.eval.data import prepare

    return prepare(EvalData(dataset=dataset, kcore=kcore))


def sample_users(split: LeaveOneOut, n: int | None, seed: int = 0) -> np.ndarray:
    """A fixed, seeded, sorted sample of ``n`` evaluable users (all when n is None or too
    large); nested (the first n of one seeded permutation), and the same sample as
    bench_finetune's ``--users n --user-seed seed``."""
    users = split.eval_users()
    if n is None or n >= len(users):
        return np.asarray(users)
    perm = np.random.default_rng([seed, USER_SALT]).permutation(users)
    return np.sort(perm[:n])


def sampled_split(split: LeaveOneOut, n: int | None, seed: int = 0) -> LeaveOneOut:
    """``split`` whose ``eval_users()`` is ``sample_users(split, n, seed)`` (the harness
    evaluates ``eval_users()``)."""
    import copy

    chosen = sample_users(split, n, seed)
    view = copy.copy(split)
    view.eval_users = lambda: chosen  # type: ignore[method-assign]
    return view


def candidate_lists(split: LeaveOneOut, users: np.ndarray, stage: str = "test",
                    seed: int = 0) -> np.ndarray:
    """The harness's 20-candidate lists (target + 19 seeded random negatives, shuffled):
    exactly what ``protocol.name = 'candidates'`` evaluates with this seed."""
    from llmrank.eval.config import EvalProtocol
    from llmrank.eval.protocols import ProtocolContext, candidate_matrix

    ctx = ProtocolContext(split, EvalProtocol(name="candidates", stage=stage), seed)  # type: ignore[arg-type]
    return candidate_matrix(ctx, np.asarray(users))


def rank_input(split: LeaveOneOut, user: int, cands: np.ndarray, stage: str) -> RankInput:
    """The reranker's request for one user: visible history (oldest first) and candidates."""
    ds = split.dataset
    items = ds.items
    hist = [items[ds.item_ids[h]] for h in split.history(int(user), stage)]
    return RankInput(hist, [items[ds.item_ids[int(c)]] for c in cands], key=str(user))


class PermutationCache:
    """(stage, user, candidate codes, permutation) -> renormalised log-probs per candidate.

    A user's missing permutations 0..max_perm-1 are all scored in ONE backend call, so the
    backend's shared-prefix KV reuse computes the system prompt and history once for all of
    them; asking for 1 permutation therefore also fills the cache for 3. Rows are appended
    to ``path`` (JSON lines) after every call: a killed run resumes without model calls."""

    def __init__(self, llm: Any, builder: RankPromptBuilder, *, seed: int = 0, max_perm: int = 3,
                 path: Path | None = None) -> None:
        self.scorer = LabelScorer(llm, builder, permutations=1, seed=seed)
        self.seed = seed
        self.max_perm = max_perm
        self.path = path
        self.rows: dict[tuple[str, int, tuple[int, ...], int], np.ndarray] = {}
        self.perms: dict[tuple[str, int, tuple[int, ...], int], np.ndarray] = {}
        self.user_seconds: list[float] = []  # wall time per newly scored user (all perms)
        self.prompt_tokens: list[int] = []
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                key = (rec["stage"], rec["user"], tuple(rec["cands"]), rec["perm"])
                self.rows[key] = np.asarray(rec["scores"], dtype=np.float64)
                self.perms[key] = np.asarray(rec["order"], dtype=np.int64)
            log.info("%d cached score rows from %s", len(self.rows), path)

    @staticmethod
    def _key(stage: str, user: int, cands: np.ndarray, p: int) -> tuple[str, int, tuple[int, ...], int]:
        return (stage, int(user), tuple(int(x) for x in cands), p)

    def fill(self, split: LeaveOneOut, stage: str, users: np.ndarray, cands: np.ndarray,
             n_perm: int) -> None:
        """Score every (user, permutation < max(n_perm, max_perm)) not in the cache."""
        todo, reqs = [], []
        for u, c in zip(users.tolist(), cands, strict=True):
            for p in range(max(n_perm, self.max_perm)):
                key = self._key(stage, u, c, p)
                if key in self.rows:
                    continue
                perm = permutation(len(c), p, self.seed, str(u))
                reqs.append(rank_input(split, int(u), c[perm], stage))
                todo.append((key, perm))
        if not reqs:
            return
        t = time.perf_counter()
        res = self.scorer.score(reqs)
        n_users = len({k[1] for k, _ in todo})
        self.user_seconds += [(time.perf_counter() - t) / n_users] * n_users
        lines = []
        for (key, perm), r in zip(todo, res, strict=True):
            per_cand = np.empty(len(perm))
            per_cand[perm] = r.scores
            self.rows[key], self.perms[key] = per_cand, perm
            self.prompt_tokens.append(r.prompt_tokens)
            lines.append(json.dumps({"stage": key[0], "user": key[1], "cands": list(key[2]),
                                     "perm": key[3], "order": perm.tolist(),
                                     "scores": [round(float(x), 6) for x in per_cand]}))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")

    def scores(self, split: LeaveOneOut, stage: str, users: np.ndarray, cands: np.ndarray,
               n_perm: int) -> np.ndarray:
        """Mean over permutations 0..n_perm-1 of the per-candidate scores."""
        self.fill(split, stage, users, cands, n_perm)
        out = np.zeros(cands.shape, dtype=np.float64)
        for row, (u, c) in enumerate(zip(users.tolist(), cands, strict=True)):
            for p in range(n_perm):
                out[row] += self.rows[self._key(stage, u, c, p)]
        return out / n_perm

    def presented_position_stats(self) -> dict[str, Any]:
        """Model-side position bias: over all cached prompts, how often each presented
        position (label A, B, ...) got the highest score, and its mean renormalised log-prob."""
        by_pos: list[np.ndarray] = []
        for key, per_cand in self.rows.items():
            by_pos.append(per_cand[self.perms[key]])  # presented position -> score
        if not by_pos:
            return {}
        width = max(len(x) for x in by_pos)
        mat = np.stack([x for x in by_pos if len(x) == width])
        top = np.bincount(mat.argmax(axis=1), minlength=width)
        return {"prompts": len(mat), "argmax_share": (top / len(mat)).round(4).tolist(),
                "mean_logprob": mat.mean(axis=0).round(4).tolist()}


class ZeroShotRanker:
    """Eval-harness Ranker: the zero-shot reranker with ``n_perm`` averaged permutations."""

    def __init__(self, cache: PermutationCache, n_perm: int, name: str) -> None:
        self.cache = cache
        self.n_perm = n_perm
        self.name = name
        self.split: LeaveOneOut | None = None

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self.split = split

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None or self.split is None:
            raise ValueError("the reranker scores candidate lists only (after fit)")
        return self.cache.scores(self.split, stage, np.asarray(users), np.asarray(candidates), self.n_perm)


class ListedOnly:
    """Retriever top-N protocol: a user whose target is not among the N candidates scores 0
    on every accuracy metric whatever the order, so the model is not asked (zeros instead).
    Accuracy metrics are unchanged; the LLM calls drop by the retriever's miss rate."""

    def __init__(self, inner: Any, split: LeaveOneOut) -> None:
        self.inner = inner
        self.split = split
        self.name = inner.name

    def fit(self, split: LeaveOneOut, stage: str) -> None:
        self.split = split
        self.inner.fit(split, stage)

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None:
            raise ValueError("ListedOnly is for candidate protocols")
        targets = np.array([self.split.target(int(u), stage) for u in users])
        listed = (candidates == targets[:, None]).any(axis=1)
        out = np.zeros(candidates.shape, dtype=np.float64)
        if listed.any():
            out[listed] = self.inner.score(users[listed], candidates[listed], stage)
        return out
