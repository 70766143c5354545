"""One call runs a whole eval config: prepare data, build and fit each ranker, evaluate it
(sharded, checkpointed, resumable), compare against the reference ranker, write run files,
metrics.json, results.md and plots under the output folder.

Output layout (``cfg.out_dir()``)::

    metrics.json  results.md  metric_vs_k.png  tradeoff.png  position_bias.png
    runs/<label>.jsonl  runs/<label>.trec  runs/qrels.trec
    checkpoints/<label>/  (manifest.json + shards/NNNNN.npz; what a resumed run reuses)
"""

from __future__ import annotations

import inspect
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.errors import ConfigError
from llmrank.eval import provenance, report
from llmrank.eval.base import Ranker
from llmrank.eval.beyond import genre_vectors
from llmrank.eval.config import EvalConfig, RankerSpec
from llmrank.eval.data import PreparedData, prepare
from llmrank.eval.protocols import eval_users
from llmrank.eval.results import BeyondInputs, RankerResult, compare
from llmrank.eval.runner import evaluate_ranker

log = logging.getLogger(__name__)

# progress_factory(label, total_users) -> advance(n_users)
ProgressFactory = Callable[[str, int], Callable[[int], None]]


@dataclass
class EvalReport:
    config: EvalConfig
    results: list[RankerResult]
    out_dir: Path
    data: PreparedData
    meta: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def result(self, label: str) -> RankerResult:
        for r in self.results:
            if r.label == label:
                return r
        raise KeyError(label)


def build_ranker(spec: RankerSpec, seed: int) -> Ranker:
    """Create a ranker from the ``rankers`` registry; ``seed`` is passed when the factory
    takes one and the options do not set it."""
    from llmrank.registry import rankers

    factory = rankers.get(spec.name)
    options = dict(spec.options)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if "seed" in params and "seed" not in options:
        options["seed"] = seed
    try:
        ranker: Ranker = factory(**options)
    except (TypeError, ValueError) as exc:  # unknown option / option value out of range
        raise ConfigError(f"ranker {spec.display!r}: bad options {spec.options}: {exc}") from exc
    return ranker


def item_vectors(cfg: EvalConfig, dataset: Dataset) -> np.ndarray | None:
    """Item representations for intra-list diversity: 'genres' (multi-hot), 'text' (the
    default embedder over ``render_item``, cached on disk by llmrank.embed), 'none', or
    'npy:<path>' with one row per item code."""
    spec = cfg.run.diversity_vectors
    if spec == "none":
        return None
    if spec == "genres":
        return genre_vectors(dataset)
    if spec == "text":
        from llmrank.config import EmbedderConfig
        from llmrank.embed.factory import create_embedder
        from llmrank.retrieve.text import embed_items

        items = [dataset.items[i] for i in dataset.item_ids]
        return np.asarray(embed_items(create_embedder(EmbedderConfig()), items))
    if spec.startswith("npy:"):
        vec = np.load(spec[4:])
        if vec.shape[0] != dataset.n_items:
            raise ConfigError(f"{spec}: {vec.shape[0]} rows for {dataset.n_items} items")
        return np.asarray(vec)
    raise ConfigError(f"run.diversity_vectors must be genres, text, none or npy:<path>, got {spec!r}")


def run_eval(cfg: EvalConfig, *, dataset: Dataset | None = None,
             progress: ProgressFactory | None = None, fresh: bool = False,
             rankers: dict[str, Ranker] | None = None) -> EvalReport:
    """Run every ranker of ``cfg``; ``rankers`` may supply ready instances by label (Python
    callers with a ranker that is not in the registry). Resumes from checkpoints unless
    ``fresh``."""
    started = provenance.now()
    out = cfg.out_dir()
    if fresh and (out / "checkpoints").exists():
        shutil.rmtree(out / "checkpoints")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    prepared = prepare(cfg.data, dataset)
    split, proto = prepared.split, cfg.protocol
    stage = proto.stage
    pop = np.asarray(split.train_matrix(stage).sum(axis=0)).reshape(-1)
    beyond = BeyondInputs(split.dataset.n_items, pop, item_vectors(cfg, split.dataset),
                          proto.beyond_k)
    users = eval_users(split, proto)
    data_digest = prepared.digest()
    targets = np.array([split.target(int(u), stage) for u in users])
    instances = dict(rankers or {})

    def get(spec: RankerSpec) -> Ranker:
        if spec.display not in instances:
            instances[spec.display] = build_ranker(spec, cfg.seed)
        return instances[spec.display]

    retriever = None
    if proto.name == "retriever":
        rspec = cfg.ranker(proto.retriever or "")
        retriever = get(rspec)
        t = time.perf_counter()
        retriever.fit(split, stage)
        log.info("retriever %s fitted in %.1fs", rspec.display, time.perf_counter() - t)

    results: list[RankerResult] = []
    for spec in cfg.rankers:
        ranker = get(spec)
        advance = progress(spec.display, len(users)) if progress else None
        res = evaluate_ranker(
            ranker, split, proto, seed=cfg.seed, label=spec.display, retriever=retriever,
            out_dir=out / "checkpoints" / spec.display, fingerprint=cfg.fingerprint(spec, data_digest),
            workers=cfg.run.workers, shard_size=cfg.run.shard_size,
            fit=ranker is not retriever, beyond=beyond, progress=advance)
        results.append(res)
        log.info("%s: ndcg@10 %s", spec.display, report.fmt_ci(res.summary.get("ndcg@10")))
    if cfg.run.reference:
        ref = next((r for r in results if r.label == cfg.run.reference), None)
        if ref is None:
            raise ConfigError(f"reference ranker {cfg.run.reference!r} is not among the rankers")
        for r in results:
            if r is not ref:
                r.paired = compare(r, ref, method=cfg.run.paired_method, seed=cfg.seed)

    meta = {
        "name": cfg.name, "seed": cfg.seed, "config": cfg.model_dump(),
        "preprocessing": prepared.preprocessing, "data_path": str(prepared.path) if prepared.path else "catalog",
        "versions": provenance.versions(), "git": provenance.git_state(),
        "machine": provenance.machine(), "started": started, "finished": provenance.now(),
        "users": {"evaluated": len(users), "evaluable": len(split.eval_users())},
    }
    rep = EvalReport(cfg, results, out, prepared, meta)
    rep.files = write_outputs(rep, targets)
    return rep


def write_outputs(rep: EvalReport, targets: np.ndarray) -> list[Path]:
    out, cfg, ds = rep.out_dir, rep.config, rep.data.split.dataset
    files = []
    for r in rep.results:
        jl, trec = out / "runs" / f"{r.label}.jsonl", out / "runs" / f"{r.label}.trec"
        report.write_run_jsonl(jl, r, ds, targets)
        report.write_trec(trec, out / "runs" / "qrels.trec", r, ds, targets)
        files += [jl, trec]
    files.append(out / "runs" / "qrels.trec")
    report.write_metrics_json(out / "metrics.json", rep.results, rep.meta)
    md = report.markdown_table(rep.results, header_lines(rep), cfg.run.reference)
    (out / "results.md").write_text(md, encoding="utf-8")
    files += [out / "metrics.json", out / "results.md"]
    if cfg.run.plots:
        from llmrank.eval.plots import write_plots

        title = f"{cfg.name}: {cfg.protocol.name}, {rep.data.describe()}"
        files += write_plots(rep.results, out, title)
    return files


def _users_line(users: dict[str, int] | None) -> str:
    """How many users the numbers are over: protocol.max_users (--max-users) keeps the first
    N evaluable users, which the data line (all evaluable users) does not say."""
    if not users:
        return "-"
    n, total = users["evaluated"], users["evaluable"]
    return f"{n} evaluated" if n == total else f"{n} evaluated, the first of {total} evaluable (max_users)"


def header_lines(rep: EvalReport) -> dict[str, Any]:
    """What every printed table states: data + preprocessing, protocol, seed, commit."""
    cfg, p = rep.config, rep.config.protocol
    proto = p.name + (f" (1 target + {p.n_negatives} random negatives)" if p.name == "candidates"
                      else f" (top-{p.n_retrieve} of {p.retriever})" if p.name == "retriever"
                      else " (all items, history masked)")
    git = rep.meta.get("git", {})
    return {
        "name": cfg.name,
        "data": rep.data.describe(),
        "protocol": f"{proto}, stage {p.stage}, ties {p.ties}",
        "users": _users_line(rep.meta.get("users")),
        "seed": cfg.seed,
        "commit": f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        "date": rep.meta.get("finished"),
    }
