"""From per-user outcomes to the numbers a report shows: per-user metric arrays, their
bootstrap CIs, the retrieved-users subset, beyond-accuracy metrics, position bias and
output-health rates, all in one typed record per ranker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrank.eval import beyond
from llmrank.eval.beyond import PositionBias
from llmrank.eval.metrics import metrics_from_ranks
from llmrank.eval.protocols import ShardResult
from llmrank.eval.stats import CI, PairedMethod, PairedResult, bootstrap_ci, paired_test


@dataclass
class RankerResult:
    """Everything measured for one ranker under one protocol and stage."""

    label: str
    protocol: str
    stage: str
    outcome: ShardResult  # per-user ranks and lists, in user order
    per_user: dict[str, np.ndarray]  # metric name -> per-user values (all users)
    summary: dict[str, CI]  # metric name -> mean with 95% bootstrap CI (all users)
    retrieved_summary: dict[str, CI] = field(default_factory=dict)  # target-retrieved users
    beyond: dict[str, CI] = field(default_factory=dict)  # diversity / novelty / popularity
    coverage: float = 0.0
    position_bias: PositionBias | None = None
    invalid_rate: float = 0.0
    missing_rate: float = 0.0  # missing candidate scores / candidates
    retrieved_rate: float = 1.0
    fit_seconds: float = 0.0
    paired: dict[str, PairedResult] = field(default_factory=dict)  # vs reference, per metric

    @property
    def n_users(self) -> int:
        return len(self.outcome.users)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "protocol": self.protocol, "stage": self.stage,
            "n_users": self.n_users,
            "metrics": {k: v.to_dict() for k, v in self.summary.items()},
            "metrics_retrieved_users": {k: v.to_dict() for k, v in self.retrieved_summary.items()},
            "beyond_accuracy": {k: v.to_dict() for k, v in self.beyond.items()},
            "catalog_coverage": self.coverage,
            "position_bias": None if self.position_bias is None else vars(self.position_bias),
            "invalid_output_rate": self.invalid_rate,
            "missing_candidate_rate": self.missing_rate,
            "retrieved_rate": self.retrieved_rate,
            "fit_seconds": self.fit_seconds,
            "score_seconds": self.outcome.seconds,
            "paired_vs_reference": {k: v.to_dict() for k, v in self.paired.items()},
        }


@dataclass
class BeyondInputs:
    """Catalog facts the beyond-accuracy metrics need (computed once per run)."""

    n_items: int
    popularity: np.ndarray  # per item code, training users with it (train_matrix column sums)
    vectors: np.ndarray | None = None  # item representations for diversity
    k: int = 10


def summarize(label: str, protocol: str, stage: str, outcome: ShardResult,
              ks: list[int], seed: int, inputs: BeyondInputs | None = None,
              fit_seconds: float = 0.0) -> RankerResult:
    """Per-user metrics at ``ks`` plus CIs and the extras the protocol allows."""
    per_user = metrics_from_ranks(outcome.ranks, ks)
    summary = {k: bootstrap_ci(v, seed) for k, v in per_user.items()}
    res = RankerResult(label, protocol, stage, outcome, per_user, summary, fit_seconds=fit_seconds)
    n = max(1, len(outcome.users))
    res.invalid_rate = float(outcome.invalid.sum()) / n
    res.missing_rate = float(outcome.n_missing.sum()) / max(1, int(outcome.n_candidates.sum()))
    res.retrieved_rate = float(outcome.retrieved.mean()) if len(outcome.retrieved) else 0.0
    if protocol == "retriever":
        mask = outcome.retrieved
        res.retrieved_summary = {k: bootstrap_ci(v[mask], seed) for k, v in per_user.items()}
    pb_metric = "ndcg@10" if "ndcg@10" in per_user else next(iter(per_user))
    res.position_bias = beyond.position_bias(outcome.target_pos, per_user[pb_metric], pb_metric)
    if inputs is not None:
        lists, k = outcome.lists, inputs.k
        if k > lists.shape[1] and (outcome.n_candidates > lists.shape[1]).any():
            raise ValueError(
                f"beyond-accuracy metrics at k={k} need each user's top {k}, but only "
                f"{lists.shape[1]} items per user were kept (protocol.list_len)")
        res.coverage = beyond.catalog_coverage(lists, inputs.n_items, k)
        extra = {
            f"novelty@{k}": beyond.novelty(lists, inputs.popularity, k),
            f"popularity@{k}": beyond.popularity_bias(lists, inputs.popularity, k),
        }
        if inputs.vectors is not None:
            extra[f"diversity@{k}"] = beyond.intra_list_diversity(lists, inputs.vectors, k)
        res.beyond = {name: bootstrap_ci(v[~np.isnan(v)], seed) for name, v in extra.items()}
    return res


def compare(result: RankerResult, reference: RankerResult, *,
            method: PairedMethod = "permutation", seed: int = 0) -> dict[str, PairedResult]:
    """Paired test of ``result`` against ``reference`` for every metric (same users)."""
    if not np.array_equal(result.outcome.users, reference.outcome.users):
        raise ValueError("paired comparison needs both rankers evaluated on the same users")
    return {name: paired_test(result.per_user[name], reference.per_user[name], method=method,
                              seed=seed)
            for name in result.per_user if name in reference.per_user}
