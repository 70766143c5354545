"""Candidate lists for the ranking protocols, deterministic under a seed.

- ``random_candidates``: the target plus n negatives the user never touched (LLMRank's
  20-candidate protocol), shuffled.
- ``top_n_candidates``: the first N unseen items of a retriever's ranking; the ranking itself
  comes from llmrank.retrieve. The eval harness's retriever top-N protocol does not use it
  (``llmrank.eval.protocols.retrieved_matrix`` keeps a re-consumed target, which this drops
  with the rest of ``seen``).
"""

from __future__ import annotations

import numpy as np


def user_rng(seed: int, user: int, salt: int = 0) -> np.random.Generator:
    """An RNG that depends only on (seed, user, salt): results do not depend on the order in
    which users are processed, so parallel and resumed runs agree."""
    return np.random.default_rng([seed, user, salt])


def sample_negatives(n_items: int, exclude: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct item codes uniformly from ``range(n_items)`` minus ``exclude``.
    ValueError for a code in ``exclude`` outside the catalog (a negative one would index
    from the end and exclude the wrong item)."""
    codes = np.asarray(exclude, dtype=np.int64)
    if len(codes) and (codes.min() < 0 or codes.max() >= n_items):
        bad = codes[(codes < 0) | (codes >= n_items)]
        raise ValueError(f"exclude holds codes outside range({n_items}): {bad[:5].tolist()}")
    excluded = np.zeros(n_items, dtype=bool)
    excluded[codes] = True
    available = n_items - int(excluded.sum())
    if available < n:
        raise ValueError(f"only {available} items left to sample {n} negatives from")
    if available < n_items // 2:
        # most of the catalog is excluded: rejection sampling would spin, draw from the rest
        return rng.choice(np.flatnonzero(~excluded), size=n, replace=False).astype(np.int64)
    out: list[int] = []
    chosen = set()
    # rejection sampling is fast when exclusions are a small part of the catalog
    while len(out) < n:
        draw = rng.integers(0, n_items, size=2 * (n - len(out)) + 8)
        for c in draw.tolist():
            if not excluded[c] and c not in chosen:
                chosen.add(c)
                out.append(c)
                if len(out) == n:
                    break
    return np.asarray(out, dtype=np.int64)


def random_candidates(
    n_items: int, target: int, seen: np.ndarray, *, n_negatives: int = 19, seed: int = 0,
    user: int = 0,
) -> np.ndarray:
    """Target plus ``n_negatives`` random unseen items, shuffled (LLMRank protocol).
    ValueError for a target outside the catalog (-1: a user with no target)."""
    if not 0 <= int(target) < n_items:
        raise ValueError(f"target {target} is not an item code in range({n_items})")
    rng = user_rng(seed, user)
    exclude = np.append(np.asarray(seen, dtype=np.int64), target)
    negs = sample_negatives(n_items, exclude, n_negatives, rng)
    cands = np.append(negs, target)
    rng.shuffle(cands)
    return cands


def top_n_candidates(ranked: np.ndarray, seen: np.ndarray, n: int = 20) -> np.ndarray:
    """The first ``n`` item codes of ``ranked`` (best first) that are not in ``seen``, in
    order, without duplicates. Fewer than ``n`` when the ranking runs out."""
    seen_set = set(np.asarray(seen, dtype=np.int64).tolist())
    out: list[int] = []
    for c in np.asarray(ranked, dtype=np.int64).tolist():
        if c not in seen_set:
            seen_set.add(c)
            out.append(c)
            if len(out) == n:
                break
    return np.asarray(out, dtype=np.int64)
