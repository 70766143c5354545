"""User query vectors from item vectors: a recency-weighted mean of the history.

A user's taste drifts, so the last items say more about the next one than the first do:
item ``i`` of ``n`` (0 = oldest) gets weight ``0.5 ** ((n - 1 - i) / half_life)``; the
newest weighs 1, the one ``half_life`` positions earlier 1/2. ``half_life=inf`` is the plain
mean."""

from __future__ import annotations

import math

import numpy as np

from llmrank.embed.base import normalize_rows

NEGLIGIBLE = 1e-6  # positions whose weight is below this are not even looked up


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """Weights of ``n`` time-ordered positions, oldest first (float32, newest = 1)."""
    if half_life <= 0 or math.isnan(half_life):
        raise ValueError(f"recency half-life must be > 0 (inf for a plain mean), got {half_life}")
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    return np.power(0.5, age / half_life).astype(np.float32)


def useful_length(half_life: float) -> int | None:
    """How many of the newest positions carry weight above NEGLIGIBLE (None = all)."""
    if math.isinf(half_life):
        return None
    return math.ceil(half_life * math.log2(1 / NEGLIGIBLE)) + 1


def weighted_query(vectors: np.ndarray, half_life: float) -> np.ndarray:
    """Unit-norm recency-weighted mean of time-ordered unit ``vectors`` (oldest first)."""
    if len(vectors) == 0:
        raise ValueError("no vectors to build a query from")
    w = recency_weights(len(vectors), half_life)
    q = (w[:, None] * vectors).sum(axis=0, keepdims=True)
    return normalize_rows(q)[0]


def combine(*vectors: np.ndarray | None) -> np.ndarray:
    """Equal-weight blend of unit query vectors (history and free text), renormalised."""
    parts = [v for v in vectors if v is not None]
    if not parts:
        raise ValueError("nothing to combine")
    return normalize_rows(np.sum(parts, axis=0, keepdims=True))[0]
