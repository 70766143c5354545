"""llmrank's metrics agree with ranx (a maintained ranking-evaluation library) on the same
run and qrels files, written by the harness itself, to 1e-6 per user."""

from __future__ import annotations

import numpy as np
import pytest

from llmrank.baselines import ALSRanker, MostPopularRanker, RandomRanker
from llmrank.eval.config import EvalProtocol
from llmrank.eval.report import write_trec
from llmrank.eval.runner import evaluate_ranker

ranx = pytest.importorskip("ranx")

METRICS = [f"{m}@{k}" for m in ("ndcg", "recall", "mrr") for k in (1, 5, 10, 20)]


def test_metrics_match_ranx(synth_split, tmp_path):
    cases = [
        (ALSRanker(factors=8, iterations=3), "full"),
        (MostPopularRanker(), "full"),  # many tied scores: order must survive the files
        (RandomRanker(seed=0), "candidates"),
        (MostPopularRanker(), "candidates"),
    ]
    for i, (ranker, protocol) in enumerate(cases):
        res = evaluate_ranker(ranker, synth_split, EvalProtocol(name=protocol))
        targets = [synth_split.target(int(u), "test") for u in res.outcome.users]
        run_path, qrels_path = tmp_path / f"{i}.run", tmp_path / f"{i}.qrels"
        write_trec(run_path, qrels_path, res, synth_split.dataset, targets)
        qrels = ranx.Qrels.from_file(str(qrels_path), kind="trec")
        run = ranx.Run.from_file(str(run_path), kind="trec")
        means = ranx.evaluate(qrels, run, METRICS)
        ids = synth_split.dataset.user_ids
        for name in METRICS:
            assert means[name] == pytest.approx(res.summary[name].mean, abs=1e-6), (ranker.name, name)
            theirs = run.scores[name]
            ours = dict(zip((ids[int(u)] for u in res.outcome.users), res.per_user[name], strict=True))
            diff = max(abs(theirs[q] - ours[q]) for q in ours)
            assert diff < 1e-6, (ranker.name, protocol, name, diff)
        assert np.isfinite(res.outcome.ranks).any()
