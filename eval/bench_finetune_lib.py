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
                     stages: tuple[str, ...] = ("valid",),
                     overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """Fused (LRU + text) retriever on the validation-stage visible data (no evaluated user's
    validation or test item), saved to disk. It serves the hard negatives of the training
    examples and both evaluation stages: at test time its query history includes the
    validation item, which it never trained on (a slightly weaker retriever than one
    retrained per stage, and no leak; one training instead of two on the shared CPU).
    ``overrides`` are config keys (``{"retriever.options.sequential": {"ensemble": []}}``
    builds the one-model fusion that section 6 of eval/RESULTS.md measured)."""
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
        retr = cls.build(visible_dataset(data.split, stage), load_config({}, overrides), **kwargs)
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


# ---- report: markdown from the JSON outputs (numbers are never typed by hand) ------------
def _ci(m: dict[str, Any] | None) -> str:
    return "n/a" if not m else f"{m['mean']:.4f} [{m['low']:.4f}, {m['high']:.4f}]"


def _pair(p: dict[str, Any] | None) -> str:
    if not p:
        return "n/a"
    rel = "" if p.get("relative") is None else f" ({100 * p['relative']:+.1f}%)"
    return f"{p['diff']:+.4f}{rel} [{p['ci'][0]:+.4f}, {p['ci'][1]:+.4f}], p={p['p']:.3g}"


def report(out: Path, run_dir: Path, eval_file: str = "evaluate.json") -> str:
    """Section-6 tables from ``eval_file``, the training summary and validation.jsonl."""
    lines: list[str] = []
    ev_path = out / eval_file
    ev = json.loads(ev_path.read_text()) if ev_path.is_file() else {}
    res, paired = ev.get("results", {}), ev.get("paired", {})
    if res:
        n = ev.get("n_users", {})
        lines += [f"users: {n}; adapter {ev.get('adapter')} (weights {ev.get('adapter_tag')})",
                  "", "20-candidate protocol (test):", "",
                  "| ranker | users | NDCG@1 | NDCG@5 | NDCG@10 [95% CI] | NDCG@20 |",
                  "|---|---|---|---|---|---|"]
        for k in ("zero-shot/candidates", "tuned/candidates"):
            if k in res:
                m = res[k]["metrics"]
                lines.append(f"| {k.split('/')[0]} | {res[k]['n_users']} | {m['ndcg@1']['mean']:.4f} | "
                             f"{m['ndcg@5']['mean']:.4f} | {_ci(m['ndcg@10'])} | {m['ndcg@20']['mean']:.4f} |")
        p = paired.get("tuned vs zero-shot (candidates)", {}).get("all_users", {})
        lines += ["", f"tuned - zero-shot NDCG@10: {_pair(p.get('ndcg@10'))}", "",
                  "Retriever top-20 protocol (test) = full pipeline under full ranking at K <= 20:", "",
                  "| ranker | NDCG@10 all users [95% CI] | Recall@10 | MRR@10 | NDCG@10 target-retrieved users | "
                  "vs retriever, NDCG@10 all users (paired) |", "|---|---|---|---|---|---|"]
        full = res.get("retriever/full")
        if full:
            m = full["metrics"]
            lines.append(f"| fused retriever alone | {_ci(m['ndcg@10'])} | {m['recall@10']['mean']:.4f} | "
                         f"{m['mrr@10']['mean']:.4f} | - | - |")
        for k, name in (("zero-shot/retriever", "pipeline (zero-shot) vs its retriever"),
                        ("tuned/retriever", "pipeline (tuned) vs its retriever"),
                        ("tuned-blend/retriever", "pipeline (tuned+blend) vs its retriever")):
            if k in res:
                m, r = res[k]["metrics"], res[k]["retrieved_users"]
                pr = paired.get(name, {})
                rb = pr.get("retrieved_users", {}).get("ndcg@10")
                retr_note = f"{_ci(r.get('ndcg@10'))} (retriever {rb['b']:.4f})" if rb else _ci(r.get("ndcg@10"))
                lines.append(f"| {k.split('/')[0]} | {_ci(m['ndcg@10'])} | {m['recall@10']['mean']:.4f} | "
                             f"{m['mrr@10']['mean']:.4f} | {retr_note} | "
                             f"{_pair(pr.get('all_users', {}).get('ndcg@10'))} |")
        if "retriever/full" in res:
            lines.append(f"\nretrieved rate (Recall@20): {res['retriever/full']['metrics']['recall@20']['mean']:.4f}")
        for name, pr in paired.items():
            if "retrieved_users" in pr:
                lines.append(f"- {name}, target-retrieved users, NDCG@10: {_pair(pr['retrieved_users'].get('ndcg@10'))}")
        if "blend_weight" in ev:
            lines.append(f"- blend weight (validation NDCG@10 argmax): {ev['blend_weight']}; "
                         f"grid {ev.get('blend_valid_ndcg@10')}")
        lines.append(f"- parts: {ev.get('parts')}")
    train = out / f"train_{run_dir.name}.json"
    if train.is_file():
        lines += ["", f"training summary: {train.read_text().strip()}"]
    manifest = run_dir / "adapter" / "llmrank_adapter.json"  # llmrank.finetune.artifacts.MANIFEST
    if manifest.is_file():
        t = json.loads(manifest.read_text()).get("training", {})
        lines.append("training (manifest): " + json.dumps(
            {k: t.get(k) for k in ("steps", "seconds", "validation_seconds", "seconds_per_step",
                                   "seconds_per_step_with_validation", "examples_per_step",
                                   "peak_memory_mb", "device", "threads")}))
    val = run_dir / "validation.jsonl"
    if val.is_file():
        lines += ["", "validation (the recipe's sample): step: NDCG@10 (label NLL)"]
        for rec in map(json.loads, val.read_text().splitlines()):
            lines.append(f"- step {rec['step']}: {rec['ndcg@10']:.4f} ({rec['label_nll']:.3f}), {rec['seconds']}s")
    return "\n".join(lines)


def retrieved_validation_reference(recipe_path: str, out: Path) -> dict[str, float] | None:
    """For a recipe validated on the retriever top-N protocol: the metrics of the
    retriever's own order on the same validation sample (what the reranker must beat)."""
    from llmrank.finetune.config import load_recipe
    from llmrank.finetune.negatives import load_retriever_negatives
    from llmrank.finetune.validation import metrics_for, validation_sample

    recipe = load_recipe(recipe_path)
    val = recipe.validation
    if val.protocol != "retrieved" or val.users <= 0:
        return None
    data = prepared(recipe.data.dataset, recipe.data.kcore)
    source = load_retriever_negatives(str(recipe.examples.retriever_path or retriever_dir(out, "valid")))
    sample = validation_sample(data.split, val.users, n_negatives=val.n_negatives, seed=recipe.seed,
                               retriever=source)
    order = -np.tile(np.arange(val.n_negatives + 1, dtype=np.float64), (len(sample), 1))
    return metrics_for(order, sample.target_cols)


def plot_validation(run_dirs: dict[str, Path], path: Path,
                    reference: tuple[str, float] = ("random order", 0.2272),
                    ylabel: str = "valid NDCG@10 (20 candidates)") -> Path | None:
    """NDCG@10 on the validation sample against the training step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    drawn = False
    for label, d in run_dirs.items():
        f = d / "validation.jsonl"
        if not f.is_file():
            continue
        recs = [json.loads(x) for x in f.read_text().splitlines()]
        ax.plot([r["step"] for r in recs], [r["ndcg@10"] for r in recs], marker="o", label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(reference[1], color="grey", ls="--", lw=1, label=f"{reference[0]} ({reference[1]:.4f})")
    ax.set_xlabel("training step (4 examples each)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
