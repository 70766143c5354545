"""Blending LLM scores with retrieval scores. Both are z-scored within the request so that
the weight means the same thing whatever the scales (log-probs vs inner products)."""

from __future__ import annotations

import numpy as np


def zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


def blend(llm_scores: np.ndarray, retrieval_scores: np.ndarray | None, weight: float) -> np.ndarray:
    """(1 - w) * z(llm) + w * z(retrieval); the LLM scores alone when w is 0 or no retrieval
    scores are known."""
    if retrieval_scores is None or weight <= 0:
        return np.asarray(llm_scores, dtype=np.float64)
    r = fill_missing(np.asarray(retrieval_scores, dtype=np.float64))
    return (1.0 - weight) * zscore(llm_scores) + weight * zscore(r)


def fill_missing(x: np.ndarray) -> np.ndarray:
    """NaN and -inf mean "no score": put them one score range below the smallest finite
    score (and +inf one range above the largest), so a missing score ranks last instead of at
    0.0, which outranks every negative score (distances, log-probs). Zeros when none is
    finite; every result finite (a range too wide to step past is clamped to the float bound)."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if finite.all():
        return x
    if not finite.any():
        return np.zeros_like(x)
    lo, hi = float(x[finite].min()), float(x[finite].max())
    with np.errstate(over="ignore"):
        gap = (hi - lo) or 1.0
        below, above = lo - gap, hi + gap
    big = np.finfo(np.float64).max
    below, above = max(below, -big), min(above, big)
    return np.where(finite, x, np.where(x == np.inf, above, below))
