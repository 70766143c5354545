"""Replay with the LLM reranker as the prior (section 7 of eval/RESULTS.md): does the LLM
prior speed up learning compared with the same bandit started flat?

Candidate pool: item-kNN's top 20 unseen items (same pool in every arm and under each prior).
Priors:
  * "llm": the pool rescored by the reranker (SmolLM2-135M zero-shot label scoring,
    ``llmrank.finetune.evaluate.RerankRanker``; ``--adapter`` for a fine-tuned one), shown to
    the LLM in retrieval order (what the recommender does) or, with ``--order shuffled``, in a
    seeded random order (the LLM's own judgement: in retrieval order a position-biased LLM
    partly echoes the retriever);
  * "knn": the pool in item-kNN order and scores (a strong non-LLM prior, for reference).
Arms under each prior: greedy, and ``--seeds`` seeds each of Thompson sampling with that
prior and Thompson started flat (the seeds average out the bandit's own sampling noise; the
requests are the same in every arm). Paired differences (prior - flat, seed-averaged hits per
request) get 95% bootstrap intervals over requests, overall and over time.
LLM scores are cached (<out>/llm_scores.jsonl), so a rerun costs no model call.

    PYTHONPATH=. nice -n 10 python eval/simulate/llm_prior.py --steps 1000 --seeds 5 \\
        --order shuffled --out eval/out/llm_prior_shuffled
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.config import DataConfig
from llmrank.data import load_dataset
from llmrank.explore.priors import ItemKNNPrior, Prior, RankerPrior, TwoStagePrior
from llmrank.explore.replay import PolicySpec, ReplayConfig, replay
from llmrank.explore.report import bootstrap_mean_ci

HERE = Path(__file__).resolve().parent
TS = {"prior_strength": 20.0, "base_rate": 0.02}
ARMS = ("greedy", "thompson", "thompson-flat")
PARTS = {"all": (0.0, 1.0), "first 10%": (0.0, 0.1), "first 25%": (0.0, 0.25),
         "last 50%": (0.5, 1.0)}


def specs(seeds: int) -> list[PolicySpec]:
    out = [PolicySpec("greedy", "greedy")]
    for s in range(seeds):
        out.append(PolicySpec(f"thompson-s{s}", "thompson", {**TS, "seed": s}))
        out.append(PolicySpec(f"thompson-flat-s{s}", "thompson", {**TS, "prior": "flat", "seed": s}))
    return out


def arm_hits(hits: dict[str, np.ndarray], arm: str) -> np.ndarray:
    """(steps,) hit indicator of ``arm`` averaged over its seeds (labels ARM or ARM-sN)."""
    rows = [h for label, h in hits.items() if label == arm or label.rsplit("-s", 1)[0] == arm]
    return np.mean(np.asarray(rows, np.float64), axis=0)


def part(x: np.ndarray, name: str) -> np.ndarray:
    lo, hi = PARTS[name]
    return x[round(lo * len(x)): round(hi * len(x))]


def summary(hits: dict[str, np.ndarray]) -> dict[str, Any]:
    """Means and 95% CIs per part of the replay; users (when saved) are resampled as units."""
    users = hits.get("users")  # absent from hits files written before 2026-11-29

    def ci(x: np.ndarray, name: str) -> tuple[float, float]:
        return bootstrap_mean_ci(part(x, name), None if users is None else part(users, name))

    arms = {a: arm_hits(hits, a) for a in ARMS}
    out: dict[str, Any] = {"steps": len(arms["greedy"]), "arms": {}, "thompson - thompson-flat": {}}
    for arm, hits in arms.items():
        out["arms"][arm] = {name: [float(part(hits, name).mean()), *ci(hits, name)]
                            for name in PARTS}
    diff = arms["thompson"] - arms["thompson-flat"]
    for name in PARTS:
        out["thompson - thompson-flat"][name] = [float(part(diff, name).mean()),
                                                 *ci(diff, name)]
    return out


def markdown(label: str, s: dict[str, Any]) -> str:
    head = "| prior | arm | " + " | ".join(PARTS) + " |\n|---|---|" + "---|" * len(PARTS) + "\n"
    rows = []
    for arm, cells in [*s["arms"].items(), ("thompson - flat (paired)", s["thompson - thompson-flat"])]:
        sign = "+" if "paired" in arm else ""
        fmt = f"{{:{sign}.4f}} [{{:{sign}.4f}}, {{:{sign}.4f}}]"
        rows.append(f"| {label} | {arm} | " + " | ".join(fmt.format(*cells[n]) for n in PARTS) + " |")
    return head + "\n".join(rows)


def plot(curves: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, arms in curves.items():
        for arm, hits in arms.items():
            steps = np.arange(1, len(hits) + 1)
            skip = min(50, len(hits) // 10)  # the first few requests are all noise
            style = "--" if arm == "thompson-flat" else ":" if arm == "greedy" else "-"
            ax.plot(steps[skip:], (np.cumsum(hits) / steps)[skip:], style, label=f"{arm} ({label} prior)")
    ax.set_xlabel("served requests")
    ax.set_ylabel("cumulative hit rate (seed mean)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(ds: Any, prior: Prior, cfg: ReplayConfig, seeds: int, label: str) -> dict[str, np.ndarray]:
    """One replay of every arm under ``prior``: hit indicators by arm label."""
    started = time.time()

    def tick(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            logging.info("%s prior: %d/%d requests, %.0fs", label, done, total, time.time() - started)

    res = replay(ds, specs(seeds), prior, cfg, progress=tick)
    return {**{k: t.hits for k, t in res.traces.items()}, "users": res.users}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "datasets"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--order", choices=("retrieval", "shuffled"), default="retrieval")
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--priors", default="knn,llm")
    ap.add_argument("--out", default="eval/out/llm_prior")
    ap.add_argument("--replot", action="store_true",
                    help="rebuild table and plot from <out>/hits_*.npz without replaying")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(1)
    from llmrank.finetune.evaluate import RerankRanker

    ds = load_dataset(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ReplayConfig(k=5, n_candidates=20, warmup=0.5, max_steps=args.steps, lookahead=5,
                       embedding_dim=0, seed=0)
    priors: dict[str, Prior] = {"knn": ItemKNNPrior()}
    if "llm" in args.priors.split(","):
        ranker = RerankRanker(adapter=args.adapter, cache_path=out / "llm_scores.jsonl", batch_size=4)
        priors["llm"] = TwoStagePrior(ItemKNNPrior(), RankerPrior(ranker), n=20, order=args.order)
    results, curves, tables = {}, {}, []
    before = json.loads((out / "comparison.json").read_text()) if (out / "comparison.json").is_file() else {}
    for label, prior in priors.items():
        if label not in args.priors.split(","):
            continue
        saved = out / f"hits_{label}.npz"
        started = time.time()
        if args.replot and saved.is_file():
            hits = dict(np.load(saved))
            name, seconds = before.get(label, {}).get("prior", label), before.get(label, {}).get("seconds")
        else:
            hits, name = run(ds, prior, cfg, args.seeds, label), prior.name
            np.savez_compressed(saved, **hits)
            seconds = time.time() - started
        results[label] = {"prior": name, "seconds": seconds, **summary(hits)}
        curves[label] = {a: arm_hits(hits, a) for a in ARMS}
        tables.append(markdown(label, results[label]))
        logging.info("%s prior\n%s", label, tables[-1])
    meta = {"dataset": args.dataset, "steps": args.steps, "seeds": args.seeds,
            "order": args.order, "adapter": args.adapter, "replay": vars(cfg), "thompson": TS}
    (out / "comparison.json").write_text(json.dumps({"config": meta, **results}, indent=1))
    (out / "table.md").write_text("\n\n".join(tables) + "\n")
    plot(curves, out / "cumulative_hit_rate.png")


if __name__ == "__main__":
    main()
