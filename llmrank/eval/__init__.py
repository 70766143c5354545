"""Evaluation harness: three protocols (full ranking, 20 candidates, retriever top-N),
per-user metrics with bootstrap CIs and paired tests, beyond-accuracy metrics, resumable
parallel runs and reports. See eval/README.md for the protocols.

Python use::

    from llmrank.eval import EvalProtocol, evaluate_ranker
    res = evaluate_ranker(my_ranker, split, EvalProtocol(name="candidates", stage="valid"))
    res.summary["ndcg@10"]   # CI(mean, low, high, n)
"""

from llmrank.eval.api import EvalReport, run_eval
from llmrank.eval.base import BreaksTies, OutputStatus, Ranker, ReportsOutputStatus
from llmrank.eval.config import EvalConfig, EvalProtocol, RankerSpec, load_eval_config
from llmrank.eval.metrics import metrics_from_ranks, ranking_metrics, target_ranks
from llmrank.eval.results import RankerResult, compare
from llmrank.eval.runner import evaluate_ranker
from llmrank.eval.stats import CI, PairedResult, bootstrap_ci, paired_test

__all__ = [
    "CI",
    "BreaksTies",
    "EvalConfig",
    "EvalProtocol",
    "EvalReport",
    "OutputStatus",
    "PairedResult",
    "Ranker",
    "RankerResult",
    "RankerSpec",
    "ReportsOutputStatus",
    "bootstrap_ci",
    "compare",
    "evaluate_ranker",
    "load_eval_config",
    "metrics_from_ranks",
    "paired_test",
    "ranking_metrics",
    "run_eval",
    "target_ranks",
]
