"""Shared pieces of the fine-tuning benchmark (eval/bench_finetune.py): data, the fused
retrievers per stage (built once, saved, reused), and the evaluation of rerankers under the
harness's protocols with per-user results kept for paired tests."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench_finetune")

OUT = Path("eval/out/bench_finetune")


def prepared(dataset: str = "ml-latest-small", kcore: int = 5) -> Any:
    from llmrank.eval.config import EvalData
    from llmrank.eval.data import prepare

    return prepare(EvalData(dataset=dataset, kcore=kcore))


def retriever_dir(out: Path, stage: str) -> Path:
    return out / "retrievers" / stage


def build_retrievers(data: Any, out: Path, kind: str = "fused",
                     stages: tuple[str, ...] = ("valid",)) -> dict[str, float]:
    """Fused (LRU + text) retriever on the validation-stage visible data (no evaluated user's
    validation or test item), saved to disk. It serves the hard negatives of the training
    examples and both evaluation stages: at test time its query history includes the
    validation item, which it never trained on (a slightly weaker retriever than one
    retrained per stage, and no leak; one training instead of two on the shared CPU)."""
    from llmrank.baselines.retriever import visible_dataset
    from llmrank.config import load_config
    from llmrank.registry import retrievers
    from llmrank.retrieve.sequential.model import SequentialModel
    from llmrank.retrieve.store import load_retriever, save_retriever

    seconds: dict[str, float] = {}
    for stage in stages:
        path = retriever_dir(out, stage)
        kwargs: dict[str, Any] = {}
        if (path / "retriever.json").is_file():
            try:
                load_retriever(path).retrieve_many([[data.split.dataset.item_ids[0]]], k=1)
                log.info("retriever for %s exists at %s", stage, path)
                continue
            except Exception as exc:  # saved by an older version of the retriever code
                log.warning("saved retriever unusable (%s): refitting the fusion on its "
                            "trained sequential model", exc)
                kwargs["model"] = SequentialModel.load(path / "model")
        start = time.perf_counter()
        cls: Any = retrievers.get(kind)
        retr = cls.build(visible_dataset(data.split, stage), load_config({}), **kwargs)
        save_retriever(retr, path)
        seconds[stage] = time.perf_counter() - start
        log.info("built %s retriever for %s in %.0fs", kind, stage, seconds[stage])
    return seconds


def retriever_ranker(out: Path, stage: str) -> Any:
    """The saved retriever of ``stage`` as an eval Ranker (top-100 full ranking)."""
    from llmrank.baselines.retriever import RetrieverRanker
    from llmrank.retrieve.store import load_retriever

    return RetrieverRanker("fused", k=100, retriever=load_retriever(retriever_dir(out, stage)),
                           name=f"fused-{stage}")


def evaluate(ranker: Any, split: Any, protocol: dict[str, Any], *, retriever: Any = None,
             seed: int = 0, label: str | None = None, ckpt: Path | None = None,
             tag: str = "") -> Any:
    """One harness evaluation (checkpointed under ``ckpt`` so a killed run resumes; ``tag``
    names what else the checkpoint depends on: the user sample, the adapter's weights)."""
    from llmrank.eval.config import EvalProtocol
    from llmrank.eval.runner import evaluate_ranker

    proto = EvalProtocol(**protocol)
    users = [int(u) for u in split.eval_users()]
    blob = json.dumps({"protocol": protocol, "label": label or ranker.name, "seed": seed,
                       "tag": tag, "users": hashlib.sha256(str(users).encode()).hexdigest()},
                      sort_keys=True).encode()
    fp = hashlib.sha256(blob).hexdigest()[:16]
    return evaluate_ranker(ranker, split, proto, seed=seed, label=label, retriever=retriever,
                           out_dir=ckpt / fp if ckpt else None, fingerprint=fp,
                           shard_size=32, fit=True)


def per_user(result: Any, metric: str = "ndcg@10") -> np.ndarray:
    return np.asarray(result.per_user[metric], dtype=np.float64)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


class TargetListedOnly:
    """A Ranker wrapper for the retriever top-N protocol: users whose target is not among
    their N candidates score 0 on every accuracy metric whatever the order, so their prompts
    are not sent to the model (zeros instead). Every accuracy metric is unchanged; only the
    run files' order and beyond-accuracy metrics of those users differ. On the shared CPU
    this cuts the LLM calls of a retriever-protocol run by the retriever's miss rate (~70%)."""

    def __init__(self, inner: Any, split: Any) -> None:
        self.inner = inner
        self.split = split
        self.name = inner.name
        self.scored = 0

    def fit(self, split: Any, stage: str) -> None:
        self.inner.fit(split, stage)

    def score(self, users: np.ndarray, candidates: np.ndarray | None, stage: str) -> np.ndarray:
        if candidates is None:
            raise ValueError("TargetListedOnly is for candidate protocols")
        targets = np.array([self.split.target(int(u), stage) for u in users])
        listed = (candidates == targets[:, None]).any(axis=1)
        out = np.zeros(candidates.shape, dtype=np.float64)
        if listed.any():
            out[listed] = self.inner.score(users[listed], candidates[listed], stage)
        self.scored += int(listed.sum())
        return out


def sampled_split(split: Any, n: int | None, seed: int = 0) -> Any:
    """``split`` whose ``eval_users()`` is a fixed, seeded sample of ``n`` evaluable users
    (sorted; all users when ``n`` is None or too large). Samples are nested: the first ``n``
    of one seeded permutation, so a larger run reuses a smaller run's cached scores."""
    import copy

    users = split.eval_users()
    if n is None or n >= len(users):
        return split
    perm = np.random.default_rng([seed, 6060]).permutation(users)
    chosen = np.sort(perm[:n])
    view = copy.copy(split)
    view.eval_users = lambda: chosen
    return view


def adapter_tag(adapter: str | None) -> str:
    """Short content hash of an adapter's weights (score caches and checkpoints are keyed
    by it, so a retrained adapter never reuses an older one's scores)."""
    if adapter is None:
        return "base"
    from llmrank.models.resolve import resolve_adapter

    h = hashlib.sha256()
    for f in sorted(resolve_adapter(adapter).glob("adapter_model.*")):
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


def paired_dict(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, Any]:
    from llmrank.eval.stats import paired_test

    r = paired_test(a, b, seed=seed)
    return {"a": r.mean_a, "b": r.mean_b, "diff": r.diff, "ci": [r.diff_ci.low, r.diff_ci.high],
            "p": r.p_value, "relative": r.diff / r.mean_b if r.mean_b else None, "n": r.n}
