"""Shared pieces of the sequential/fused retriever benchmarks (eval/bench_sequential*.py):
loading data, training or reusing a cached model, evaluating a retriever through its FAISS
index, and summarising per-user metrics with bootstrap CIs and paired tests."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.data.splits import LeaveOneOut, kcore
from llmrank.eval.metrics import metrics_from_ranks, rank_of
from llmrank.eval.stats import bootstrap_ci, paired_test
from llmrank.retrieve.sequential.config import SequentialConfig
from llmrank.retrieve.sequential.model import SequentialModel

log = logging.getLogger("bench_sequential")

KS = (5, 10, 20)
DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def load_split(name: str, k: int, data_root: Path = DATA_ROOT) -> tuple[Dataset, LeaveOneOut]:
    from llmrank.data.loaders.movielens import load_movielens

    ds = load_movielens(data_root / name)
    if k > 1:
        ds = kcore(ds, k)
    return ds, LeaveOneOut.from_dataset(ds)


def read_config(path: str | Path, **overrides: Any) -> SequentialConfig:
    data = json.loads(Path(path).read_text())
    data.update({k: v for k, v in overrides.items() if v is not None})
    return SequentialConfig.from_dict(data)


def _same(saved: dict[str, Any], config: SequentialConfig) -> bool:
    """A cached model's config equals ``config`` (fields added later take their defaults)."""
    return SequentialConfig.from_dict(saved).to_dict() == config.to_dict()


def train_or_load(split: LeaveOneOut, config: SequentialConfig, folder: Path,
                  retrain: bool = False) -> tuple[SequentialModel, dict[str, Any]]:
    """Train with the LlamaRec protocol (train histories, early stopping on validation) or
    reuse ``folder`` when it holds a model trained with the same config on the same data."""
    from llmrank.retrieve.sequential.train import train_sequential

    info_path = folder / "training.json"
    if not retrain and info_path.is_file():
        info = json.loads(info_path.read_text())
        if (_same(info["config"], config) and info["dataset"] == split.dataset.name):
            log.info("reusing trained model in %s", folder)
            return SequentialModel.load(folder, device=config.device), info
    result = train_sequential(split, config)
    result.model.save(folder)
    info = {"config": config.to_dict(), "dataset": split.dataset.name,
            "best_epoch": result.best_epoch, "best_valid_ndcg10": result.best_metric,
            "epochs_run": len(result.history), "stopped_early": result.stopped_early,
            "train_seconds": round(result.seconds, 1),
            "history": [{"epoch": h.epoch, "loss": round(h.loss, 5), "seconds": round(h.seconds, 1),
                         **{k: round(v, 5) for k, v in h.metrics.items()}} for h in result.history]}
    info_path.write_text(json.dumps(info, indent=1))
    return result.model, info


def refit_or_load(split: LeaveOneOut, config: SequentialConfig, folder: Path, epochs: int,
                  retrain: bool = False) -> tuple[SequentialModel, dict[str, Any]]:
    """A fresh model trained on training + validation items for ``epochs`` epochs (the
    early-stopped count of the same config), or the cached one in ``folder``."""
    from dataclasses import replace

    from llmrank.retrieve.sequential.train import refit_sequential

    config = replace(config, refit=True)
    info_path = folder / "training.json"
    if not retrain and info_path.is_file():
        info = json.loads(info_path.read_text())
        if (_same(info["config"], config) and info["dataset"] == split.dataset.name
                and info["epochs_run"] == epochs):
            log.info("reusing refit model in %s", folder)
            return SequentialModel.load(folder, device=config.device), info
    t0 = time.perf_counter()
    model = refit_sequential(split, config, epochs)
    model.save(folder)
    info = {"config": config.to_dict(), "dataset": split.dataset.name, "best_epoch": epochs,
            "best_valid_ndcg10": None, "epochs_run": epochs, "refit": True,
            "train_seconds": round(time.perf_counter() - t0, 1)}
    info_path.write_text(json.dumps(info, indent=1))
    return model, info


def retrieval_ranks(retriever: Any, histories: Sequence[list[str]], targets: Sequence[str],
                    k: int = 100, batch: int = 256) -> tuple[np.ndarray, float]:
    """Target ranks from the retriever's own index search (seen items excluded inside the
    search; a target outside the top k has rank inf) and the seconds it took."""
    t0 = time.perf_counter()
    ranks = np.full(len(targets), np.inf)
    for s in range(0, len(histories), batch):
        hits = retriever.retrieve_many(histories[s: s + batch], k=k)
        for j, row in enumerate(hits):
            ranks[s + j] = rank_of([c.item_id for c in row], targets[s + j])
    return ranks, time.perf_counter() - t0


def test_queries(split: LeaveOneOut, stage: str = "test",
                 users: np.ndarray | None = None) -> tuple[list[list[str]], list[str]]:
    ids = split.dataset.item_ids
    users = split.eval_users() if users is None else users
    hists = [[ids[c] for c in split.history(int(u), stage)] for u in users]
    targets = [ids[split.target(int(u), stage)] for u in users]
    return hists, targets


def summarize(ranks: np.ndarray, extra_ks: Sequence[int] = (50, 100)) -> dict[str, Any]:
    """Mean and 95% bootstrap CI (users resampled, seed 0) of every metric."""
    per_user = metrics_from_ranks(ranks, KS)
    per_user.update(metrics_from_ranks(ranks, extra_ks, names=("recall",)))
    return {name: bootstrap_ci(v).to_dict() for name, v in per_user.items()}


def paired(ranks_a: np.ndarray, ranks_b: np.ndarray,
           metrics: Sequence[str] = ("ndcg@10", "recall@10", "mrr@10", "recall@20")
           ) -> dict[str, Any]:
    """Paired permutation test of a vs b on the same users, per metric."""
    a = metrics_from_ranks(ranks_a, KS)
    b = metrics_from_ranks(ranks_b, KS)
    return {m: paired_test(a[m], b[m]).to_dict() for m in metrics}


def latency(retriever: Any, histories: Sequence[list[str]], n: int = 200, k: int = 20,
            filters: Any = None) -> dict[str, float]:
    """Single-query retrieve() latency in ms (p50/p95/mean) over the first n histories."""
    times = []
    for h in histories[:n]:
        t0 = time.perf_counter()
        retriever.retrieve(history=h, k=k, filters=filters)
        times.append((time.perf_counter() - t0) * 1000)
    arr = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2),
            "p95_ms": round(float(np.percentile(arr, 95)), 2),
            "mean_ms": round(float(arr.mean()), 2), "n": len(arr)}


def fmt(ci: dict[str, Any]) -> str:
    return f"{ci['mean']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]"
