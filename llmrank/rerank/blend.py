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
    r = np.nan_to_num(np.asarray(retrieval_scores, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return (1.0 - weight) * zscore(llm_scores) + weight * zscore(r)
