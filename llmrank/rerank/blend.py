"""Blending LLM scores with retrieval scores. Both are z-scored within the request so that
the weight means the same thing whatever the scales (log-probs vs inner products)."""

from __future__ import annotations

import numpy as np


def zscore(x: np.ndarray) -> np.ndarray:
    """z-scores of ``x``, computed on ``x`` divided by its largest magnitude (z does not change)
    so that scores near 1e308 do not overflow; zeros for equal scores or any non-finite one."""
    x = np.asarray(x, dtype=np.float64)
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(scale) or scale == 0.0:
        return np.zeros_like(x)
    u = x / scale
    sd = float(u.std())
    return (u - u.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


def unit_scale(x: np.ndarray) -> np.ndarray:
    """``x`` divided by its largest finite magnitude, non-finite values kept as they are (they
    mean "no score" to fill_missing, whose score range would overflow near 1e308)."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    top = float(np.abs(x[finite]).max()) if finite.any() else 0.0
    return x / top if top > 0 else x


def blend(llm_scores: np.ndarray, retrieval_scores: np.ndarray | None, weight: float) -> np.ndarray:
    """(1 - w) * z(llm) + w * z(retrieval); the LLM scores alone when w is 0 or no retrieval
    scores are known."""
    if retrieval_scores is None or weight <= 0:
        return np.asarray(llm_scores, dtype=np.float64)
    r = fill_missing(unit_scale(retrieval_scores))
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
