"""Full-ranking leave-one-out evaluation of a sequential model (LlamaRec protocol): score
every item, mask the user's history, rank the held-out target. Metrics come from the eval
harness (llmrank.eval.metrics) so the numbers agree with every other ranker's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from llmrank.data.splits import LeaveOneOut
from llmrank.eval.metrics import metrics_from_ranks, target_ranks

ScoreFn = Callable[[Sequence[np.ndarray]], np.ndarray]


def masked_ranks(score_fn: ScoreFn, histories: Sequence[np.ndarray], targets: np.ndarray,
                 batch_size: int = 256) -> np.ndarray:
    """1-based target ranks with each user's history items excluded (pessimistic ties); a
    re-consumed target still competes, as in the eval harness's full ranking."""
    ranks = np.full(len(histories), np.inf)
    for start in range(0, len(histories), batch_size):
        hist = histories[start: start + batch_size]
        scores = np.asarray(score_fn(hist), dtype=np.float64)
        for row, h in enumerate(hist):
            seen = np.asarray(h, dtype=np.int64)
            scores[row, seen[seen != targets[start + row]]] = -np.inf
        ranks[start: start + len(hist)] = target_ranks(scores, targets[start: start + len(hist)])
    return ranks


def split_ranks(score_fn: ScoreFn, split: LeaveOneOut, stage: str,
                users: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
    """Target ranks of ``users`` (default: all evaluable users) at ``stage``."""
    users = split.eval_users() if users is None else users
    histories = [split.history(int(u), stage) for u in users]
    targets = np.array([split.target(int(u), stage) for u in users], dtype=np.int64)
    return masked_ranks(score_fn, histories, targets, batch_size)


def summarize(ranks: np.ndarray, ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
    """Mean Recall/NDCG/MRR@k over users."""
    return {name: float(values.mean()) if len(values) else 0.0
            for name, values in metrics_from_ranks(ranks, ks).items()}
