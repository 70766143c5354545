"""Small replay with the LLM reranker as the prior (section 7 of eval/RESULTS.md).

Candidate pool: item-kNN's top 20 unseen items (same pool in every arm). Arms:
  * prior "llm":  the pool rescored by the reranker (SmolLM2-135M zero-shot label scoring,
    ``llmrank.finetune.evaluate.RerankRanker``; ``--adapter`` for a fine-tuned one);
  * prior "knn":  the pool in item-kNN order and scores;
and for each prior: greedy and Thompson sampling with that prior; plus Thompson started flat.
LLM scores are cached (eval/out/llm_prior/llm_scores.jsonl), so a rerun costs no model call.

    PYTHONPATH=. nice -n 10 python eval/simulate/llm_prior.py --steps 400
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from llmrank.config import DataConfig
from llmrank.data import load_dataset
from llmrank.explore.priors import ItemKNNPrior, RankerPrior, TwoStagePrior
from llmrank.explore.replay import PolicySpec, ReplayConfig, replay
from llmrank.explore.report import markdown, summarize, write_report

HERE = Path(__file__).resolve().parent
TS = {"prior_strength": 20.0, "base_rate": 0.02}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "datasets"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--out", default="eval/out/llm_prior")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(1)
    from llmrank.finetune.evaluate import RerankRanker

    ds = load_dataset(DataConfig(dataset=args.dataset, data_dir=args.data_dir))
    out = Path(args.out)
    cfg = ReplayConfig(k=5, n_candidates=20, warmup=0.5, max_steps=args.steps, lookahead=5,
                       embedding_dim=0, seed=0)
    specs = [PolicySpec("greedy", "greedy"), PolicySpec("thompson", "thompson", dict(TS)),
             PolicySpec("thompson-flat", "thompson", {**TS, "prior": "flat"})]
    results = {}
    for label, prior in (
        ("knn", ItemKNNPrior()),
        ("llm", TwoStagePrior(ItemKNNPrior(), RankerPrior(RerankRanker(
            adapter=args.adapter, cache_path=out / "llm_scores.jsonl", batch_size=4)), n=20)),
    ):
        started = time.time()

        def tick(done: int, total: int, label: str = label, started: float = started) -> None:
            if done % 50 == 0 or done == total:
                logging.info("%s prior: %d/%d requests, %.0fs", label, done, total, time.time() - started)

        res = replay(ds, specs, prior, cfg, progress=tick)
        summary = summarize(res)
        write_report(summary, out / label, result=res)
        results[label] = {k: {m: v[m] for m in ("hit_rate", "hit_rate_ci", "hit_rate_first_10pct",
                                                "hit_rate_last_50pct", "coverage_items")}
                          for k, v in summary["policies"].items()}
        logging.info("%s prior (%.0fs)\n%s", label, time.time() - started, markdown(summary))
    (out / "comparison.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
